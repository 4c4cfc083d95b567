// Package cli implements the warden subcommands. Each subcommand lives in its
// own file and is reachable as a function for tests: Main(ctx, args, ...)
// returns the process exit code instead of exiting.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// ExitError carries a specific exit code out of a command. Commands that
// found problems (a failed check, a broken audit chain) return it after they
// have printed what they found.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// env is what every command may use instead of process globals.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// Main runs warden with args (without the program name) and returns the exit
// code: 0 success, 1 a check failed or an error occurred, 2 usage error.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(e)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintf(stderr, "warden: %v\n", ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintf(stderr, "warden: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

type usageError struct{ error }

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:           "warden",
		Short:         "Zero-trust gateway for AI agents: SPIFFE identity, OPA policy, tamper-evident audit",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%s: %w (see '%s --help')", c.CommandPath(), err, c.CommandPath())}
	})
	root.AddCommand(
		newServeCmd(e),
		newCheckCmd(e),
		newQuickstartCmd(e),
		newCACmd(e),
		newPolicyCmd(e),
		newAuditCmd(e),
		newRevokeCmd(e),
		newUnrevokeCmd(e),
		newVersionCmd(e),
	)
	for _, add := range extraCommands {
		root.AddCommand(add(e))
	}
	return root
}

// extraCommands lets later subcommands (guard, scan, admission, mcp) register
// from their own files' init without editing this list.
var extraCommands []func(*env) *cobra.Command
