package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

func newPolicyCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "policy",
		Short: "(not yet implemented)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("policy: not implemented yet")
		},
	}
}
