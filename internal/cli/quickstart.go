package cli

import (
	"github.com/spf13/cobra"

	"github.com/wardenhq/warden/internal/quickstart"
)

func newQuickstartCmd(e *env) *cobra.Command {
	var o quickstart.Options
	var verbose bool
	c := &cobra.Command{
		Use:   "quickstart [--dir DIR] [--serve]",
		Short: "Create a dev trust domain, start Warden and demo services, and run the seed scenarios",
		Long: `quickstart needs nothing but this binary. It creates a dev CA for spiffe://warden.test
under --dir (default: a new temp dir), mints SVIDs for Warden, two demo upstreams and three agents,
starts everything with mTLS on both hops, runs the scenarios, prints each decision and its reason,
verifies the audit chain, and exits 0 only if every expectation held. --serve keeps it running and
prints curl commands.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Out = e.stdout
			if verbose {
				o.Log = e.stderr
			}
			if err := quickstart.Run(cmd.Context(), o); err != nil {
				return &ExitError{Code: 1, Err: err}
			}
			return nil
		},
	}
	c.Flags().StringVar(&o.Dir, "dir", "", "directory for the CA, SVIDs, config and audit log (default: a new temp dir)")
	c.Flags().BoolVar(&o.Serve, "serve", false, "keep Warden and the demo services running and print curl commands")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "print Warden's log to stderr")
	return c
}
