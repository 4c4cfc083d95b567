package policy

import (
	"context"
	"testing"

	"github.com/wardenhq/warden/internal/config"
)

func TestSmoke(t *testing.T) {
	errs := Check(context.Background(), config.Policy{Data: []string{"../../policies/roles.example.yaml"}}, "")
	for _, e := range errs {
		t.Error(e)
	}
}
