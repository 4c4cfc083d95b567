package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

func newQuickstartCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "quickstart",
		Short: "(not yet implemented)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("quickstart: not implemented yet")
		},
	}
}
