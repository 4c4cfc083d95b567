package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/gateway"
)

func newServeCmd(e *env) *cobra.Command {
	var cfgPath string
	c := &cobra.Command{
		Use:   "serve -c FILE",
		Short: "Run the gateway",
		Long: `Run the gateway with the given config. SIGHUP reloads policy and data (a policy
that fails to compile or fails its tests is refused; the last good one keeps serving).
SIGINT/SIGTERM drain in-flight requests for timeouts.shutdown, then exit.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return &ExitError{Code: 1, Err: err}
			}
			return serve(cmd.Context(), cfg, e.stderr)
		},
	}
	c.Flags().StringVarP(&cfgPath, "config", "c", "", "config file (required)")
	_ = c.MarkFlagRequired("config")
	return c
}

func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func serve(ctx context.Context, cfg *config.Config, logw io.Writer) error {
	log := newLogger(cfg.Log, logw)
	g, err := gateway.New(ctx, cfg, gateway.Options{Logger: log})
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := g.Reload(ctx); err != nil {
					log.Error("policy reload refused; last good policy keeps serving", "error", err)
				} else {
					log.Info("policy reloaded")
				}
			}
		}
	}()
	if err := g.Run(ctx); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
