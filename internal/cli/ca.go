package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

func newCACmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "ca",
		Short: "(not yet implemented)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("ca: not implemented yet")
		},
	}
}
