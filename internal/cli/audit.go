package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

func newAuditCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "audit",
		Short: "(not yet implemented)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("audit: not implemented yet")
		},
	}
}
