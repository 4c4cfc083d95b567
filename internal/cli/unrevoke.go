package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

func newUnrevokeCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "unrevoke",
		Short: "(not yet implemented)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("unrevoke: not implemented yet")
		},
	}
}
