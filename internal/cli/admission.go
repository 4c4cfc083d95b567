package cli

import (
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/wardenhq/warden/internal/scan/admission"
)

func init() { extraCommands = append(extraCommands, newAdmissionCmd) }

func newAdmissionCmd(e *env) *cobra.Command {
	var cfgPath string
	c := &cobra.Command{
		Use:   "admission -c FILE",
		Short: "Run the validating admission webhook that applies `warden scan` rules at admission time",
		Long: `Serve a Kubernetes ValidatingAdmissionWebhook (AdmissionReview v1 over TLS) that
evaluates the same rules as 'warden scan', in-process. Namespaces run in enforce,
warn or audit mode; Prometheus metrics (including the review latency histogram)
are served on metricsListen. See docs/scan.md and deploy/.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := admission.LoadConfig(cfgPath)
			if err != nil {
				return usageError{err}
			}
			log := slog.New(slog.NewJSONHandler(e.stderr, nil))
			return admission.Run(cmd.Context(), cfg, log)
		},
	}
	c.Flags().StringVarP(&cfgPath, "config", "c", "", "admission config file (required)")
	_ = c.MarkFlagRequired("config")
	return c
}
