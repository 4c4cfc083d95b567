package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

func newRevokeCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke",
		Short: "(not yet implemented)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("revoke: not implemented yet")
		},
	}
}
