package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/protocol/mcp"
)

func init() { extraCommands = append(extraCommands, newMCPCmd) }

func newMCPCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "mcp",
		Short: "MCP server protection: tool-definition pins",
	}
	c.AddCommand(newMCPPinCmd(e))
	return c
}

// newMCPPinCmd records a backend's current tool definitions as approved.
// The file is meant to be reviewed and committed: from then on a tool whose
// definition changes (a rug pull) is hidden and refused until pinned again.
func newMCPPinCmd(e *env) *cobra.Command {
	var cfgPath string
	var o mcp.PinOptions
	c := &cobra.Command{
		Use:   "pin -c FILE --backend NAME",
		Short: "Fetch an MCP backend's tool definitions and write them as the approved pins (options.pins_file)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cfgPath)
			if err != nil {
				printProblems(e, err)
				return &ExitError{Code: 1}
			}
			res, err := mcp.PinBackend(cmd.Context(), cfg, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s: pinned %d tools of backend %q\n", res.Path, res.Tools, o.Backend)
			for _, l := range []struct {
				what  string
				names []string
			}{{"added", res.Added}, {"changed", res.Changed}, {"removed", res.Removed}} {
				if len(l.names) > 0 {
					fmt.Fprintf(e.stdout, "  %s: %s\n", l.what, strings.Join(l.names, ", "))
				}
			}
			fmt.Fprintln(e.stdout, "Review the file (git diff) before committing it: every definition in it is trusted.")
			return nil
		},
	}
	c.Flags().StringVarP(&cfgPath, "config", "c", "", "config file (required)")
	c.Flags().StringVar(&o.Backend, "backend", "", "name of the mcp backend (required)")
	c.Flags().StringVar(&o.URL, "url", "", "MCP endpoint to fetch from (default: the backend's url)")
	c.Flags().BoolVar(&o.InsecurePlaintext, "insecure-plaintext", false, "connect over plain HTTP (loopback only)")
	c.Flags().StringVarP(&o.Out, "out", "o", "", "pins file to write (default: the backend's options.pins_file)")
	_ = c.MarkFlagRequired("config")
	_ = c.MarkFlagRequired("backend")
	return c
}
