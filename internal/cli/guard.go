package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/wardenhq/warden/internal/guard"
)

func init() { extraCommands = append(extraCommands, newGuardCmd) }

// maxGuardInput caps what `guard scan` reads; the scanner's own byte cap
// (1 MiB per string) applies on top.
const maxGuardInput = 16 << 20

func newGuardCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "guard",
		Short: "Run the content detectors (prompt injection, secrets, PII) offline",
	}
	c.AddCommand(newGuardScanCmd(e))
	return c
}

func newGuardScanCmd(e *env) *cobra.Command {
	var (
		asJSON bool
		failOn string
		ctxArg string
	)
	c := &cobra.Command{
		Use:   "scan [FILE|-]",
		Short: "Scan text or a JSON request; exit 1 if a finding reaches --fail-on",
		Long: `Scan runs the guard detectors on a file (or stdin) and prints the findings.

A JSON document (an OpenAI or Anthropic request body, an MCP message) is
scanned string by string, object keys included, and each finding names its
JSON path; the context (user, tool_output, tool_description, document,
response) is inferred from where the string sits unless --context is given.
Anything else is scanned as one text.

The report never prints the matched text, only rule ids and byte spans, so it
is safe in CI logs. Exit status: 0 nothing at or above --fail-on, 1 something
is (or a scan ran over budget), 2 usage error.`,
		Example: `  warden guard scan prompt.txt
  warden guard scan --json --fail-on critical request.json
  cat tools-list.json | warden guard scan -`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var c guard.Context
			switch ctxArg {
			case "", "auto":
			default:
				c = guard.Context(ctxArg)
				if !validGuardContext(c) {
					return usageError{fmt.Errorf("guard scan: --context %q: want auto, user, tool_output, tool_description, document or response", ctxArg)}
				}
			}
			if _, err := guard.AtOrAbove(nil, failOn); err != nil {
				return usageError{err}
			}
			in, err := readGuardInput(e, args)
			if err != nil {
				return err
			}
			s, err := guard.New(guard.Config{})
			if err != nil {
				return fmt.Errorf("guard scan: %w", err)
			}
			leaves, err := s.ScanInput(cmd.Context(), in, c)
			if err != nil {
				return fmt.Errorf("guard scan: %w", err)
			}
			if err := guard.WriteReport(e.stdout, leaves, asJSON); err != nil {
				return fmt.Errorf("guard scan: write report: %w", err)
			}
			fail, _ := guard.AtOrAbove(leaves, failOn)
			if fail {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the findings as JSON")
	c.Flags().StringVar(&failOn, "fail-on", "high", "exit 1 when a finding reaches this severity: low, medium, high, critical, none")
	c.Flags().StringVar(&ctxArg, "context", "auto", "scan context: auto, user, tool_output, tool_description, document, response")
	return c
}

func validGuardContext(c guard.Context) bool {
	for _, k := range guard.Contexts {
		if k == c {
			return true
		}
	}
	return false
}

func readGuardInput(e *env, args []string) ([]byte, error) {
	var r io.Reader = e.stdin
	name := "stdin"
	if len(args) == 1 && args[0] != "-" {
		f, err := os.Open(args[0])
		if err != nil {
			return nil, fmt.Errorf("guard scan: %w", err)
		}
		defer f.Close()
		r, name = f, args[0]
	}
	b, err := io.ReadAll(io.LimitReader(r, maxGuardInput+1))
	if err != nil {
		return nil, fmt.Errorf("guard scan: read %s: %w", name, err)
	}
	if len(b) > maxGuardInput {
		return nil, errors.New("guard scan: input larger than 16 MiB")
	}
	return b, nil
}
