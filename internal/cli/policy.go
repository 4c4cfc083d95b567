package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/policy"
)

// policyFlags select a policy: a config file's policy section, or Rego
// paths and data files directly (usable without a config), or neither for
// the embedded default library.
type policyFlags struct {
	config string
	paths  []string
	data   []string
}

func (f *policyFlags) register(cmd *cobra.Command, withPolicy bool) {
	cmd.Flags().StringVarP(&f.config, "config", "c", "", "warden config file; its policy section is used")
	if withPolicy {
		cmd.Flags().StringArrayVar(&f.paths, "policy", nil, "Rego file or directory (repeatable); default: the embedded library")
	}
	cmd.Flags().StringArrayVar(&f.data, "data", nil, "JSON or YAML data file, e.g. roles.yaml (repeatable)")
}

// resolve returns the policy config and the directory its paths are
// relative to. Flags add to what the config file says.
func (f *policyFlags) resolve() (config.Policy, string, error) {
	var pc config.Policy
	base := ""
	if f.config != "" {
		c, err := config.Load(f.config)
		if err != nil {
			return pc, "", err
		}
		pc = c.Policy
		base = c.Dir()
		// Flags are relative to the working directory, not the config.
		for _, p := range f.paths {
			pc.Paths = append(pc.Paths, absPath(p))
		}
		for _, p := range f.data {
			pc.Data = append(pc.Data, absPath(p))
		}
		return pc, base, nil
	}
	pc.Paths = append(pc.Paths, f.paths...)
	pc.Data = append(pc.Data, f.data...)
	return pc, base, nil
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func newPolicyCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Test and evaluate Rego policies",
		Long: `Work with Warden's policy: run its Rego unit tests, or evaluate a decision
for an input document (docs/policy.md describes the input).

Without -c, --policy or --data the embedded default library is used.`,
	}
	cmd.AddCommand(newPolicyTestCmd(e), newPolicyEvalCmd(e))
	return cmd
}

func newPolicyTestCmd(e *env) *cobra.Command {
	var f policyFlags
	var verbose bool
	cmd := &cobra.Command{
		Use:   "test [-c FILE] [--data FILE]... [PATH...]",
		Short: "Run Rego unit tests (test_ rules), as opa test does",
		Long: `Run the test_ rules of the given Rego files and directories (default: the
policy of -c, or the embedded library), with the data files loaded under
data. Exits 1 if any test fails or errors.

Unlike opa test, JSON and YAML files inside the directories are not loaded
as data: pass them with --data, so an example roles file is never picked up
by accident.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			f.paths = args
			pc, base, err := f.resolve()
			if err != nil {
				return err
			}
			results, err := policy.RunTests(cmd.Context(), pc, base)
			if err != nil {
				return &ExitError{Code: 1, Err: err}
			}
			return printTestResults(e.stdout, results, verbose)
		},
	}
	f.register(cmd, false)
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "also list passing tests")
	return cmd
}

func printTestResults(w io.Writer, results []policy.TestResult, verbose bool) error {
	var pass, fail, skip int
	for _, r := range results {
		switch {
		case r.Skip:
			skip++
			if verbose {
				fmt.Fprintf(w, "SKIP  %s (%s)\n", r.Name, r.Location)
			}
		case r.Pass:
			pass++
			if verbose {
				fmt.Fprintf(w, "PASS  %s (%s) %v\n", r.Name, r.Location, r.Duration.Round(time.Microsecond))
			}
		case r.Err != nil:
			fail++
			fmt.Fprintf(w, "ERROR %s (%s): %v\n", r.Name, r.Location, r.Err)
		default:
			fail++
			fmt.Fprintf(w, "FAIL  %s (%s)\n", r.Name, r.Location)
		}
	}
	if len(results) == 0 {
		fmt.Fprintln(w, "no tests found")
		return &ExitError{Code: 1}
	}
	fmt.Fprintln(w, strings.Repeat("-", 60))
	if fail > 0 {
		fmt.Fprintf(w, "FAIL: %d/%d failed", fail, len(results))
	} else {
		fmt.Fprintf(w, "PASS: %d/%d", pass, len(results))
	}
	if skip > 0 {
		fmt.Fprintf(w, " (%d skipped)", skip)
	}
	fmt.Fprintln(w)
	if fail > 0 {
		return &ExitError{Code: 1}
	}
	return nil
}

func newPolicyEvalCmd(e *env) *cobra.Command {
	var f policyFlags
	var inputPath, format string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "eval [-c FILE | --policy PATH... --data FILE...] --input FILE",
		Short: "Print the decision and reasons for an input document",
		Long: `Evaluate the policy for one input document (JSON, as in docs/policy.md;
"-" reads standard input) and print the decision, its reasons and
obligations, and the policy version. Exits 0 for allow and deny alike, 1
when the policy fails to load or evaluate (which the gateway treats as deny).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if inputPath == "" {
				return usageError{fmt.Errorf("%s: --input is required", cmd.CommandPath())}
			}
			if format != "text" && format != "json" {
				return usageError{fmt.Errorf("%s: --format must be text or json", cmd.CommandPath())}
			}
			var raw []byte
			var err error
			if inputPath == "-" {
				raw, err = io.ReadAll(io.LimitReader(e.stdin, 16<<20))
			} else {
				raw, err = os.ReadFile(inputPath)
			}
			if err != nil {
				return fmt.Errorf("policy eval: read input: %w", err)
			}
			in, err := policy.ParseInput(raw)
			if err != nil {
				return err
			}
			pc, base, err := f.resolve()
			if err != nil {
				return err
			}
			if timeout > 0 {
				pc.Timeout = timeout
			}
			eng, err := policy.New(cmd.Context(), pc, base, nil, nil)
			if err != nil {
				return err
			}
			d, evalErr := eng.Decide(cmd.Context(), in)
			if format == "json" {
				out := map[string]any{"allow": d.Allow, "reasons": d.Reasons, "obligations": d.Obligations, "version": eng.Version()}
				if evalErr != nil {
					out["error"] = evalErr.Error()
				}
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(out); err != nil {
					return err
				}
			} else {
				verdict := "deny"
				if d.Allow {
					verdict = "allow"
				}
				fmt.Fprintf(e.stdout, "decision:    %s\n", verdict)
				fmt.Fprintf(e.stdout, "reasons:     %s\n", strings.Join(d.Reasons, ", "))
				if len(d.Obligations) > 0 {
					ob, err := json.Marshal(d.Obligations)
					if err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "obligations: %s\n", ob)
				}
				fmt.Fprintf(e.stdout, "policy:      %s\n", eng.Version())
			}
			if evalErr != nil {
				return &ExitError{Code: 1, Err: evalErr}
			}
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().StringVarP(&inputPath, "input", "i", "", "input document (JSON); - for standard input")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "evaluation timeout (default: the config's policy.timeout, else 100ms)")
	return cmd
}
