package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/policy"
)

func newCheckCmd(e *env) *cobra.Command {
	var cfgPath string
	c := &cobra.Command{
		Use:   "check -c FILE",
		Short: "Validate the config and policies without starting; exit 1 listing every problem",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cfgPath)
			if err != nil {
				printProblems(e, err)
				return &ExitError{Code: 1}
			}
			errs := policy.Check(cmd.Context(), cfg.Policy, cfg.Dir())
			if len(errs) > 0 {
				printProblems(e, errors.Join(errs...))
				return &ExitError{Code: 1}
			}
			fmt.Fprintf(e.stdout, "%s: ok (%d listeners, %d backends, %d routes; policy compiled and its tests passed)\n",
				cfgPath, len(cfg.Listeners), len(cfg.Backends), len(cfg.Routes))
			return nil
		},
	}
	c.Flags().StringVarP(&cfgPath, "config", "c", "", "config file (required)")
	_ = c.MarkFlagRequired("config")
	return c
}

// printProblems prints each joined error on its own line.
func printProblems(e *env, err error) {
	var n int
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		n++
		fmt.Fprintf(e.stderr, "%v\n", err)
	}
	walk(err)
	fmt.Fprintf(e.stderr, "%d problem(s) found\n", n)
}
