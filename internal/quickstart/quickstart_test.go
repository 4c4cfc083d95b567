package quickstart

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestQuickstart runs the whole quickstart: every scenario must hold and the
// audit chain must verify, and the report must show the reasons from the
// audit log (not just client-facing codes).
func TestQuickstart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := Run(ctx, Options{Dir: t.TempDir(), Out: &out, Generous: true}); err != nil {
		t.Fatalf("quickstart failed: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"allowed_by_role:support-reader",
		"no_binding_for_identity",
		"identity_revoked",
		"refused (TLS)",
		"sees only: search_kb",
		"tool_not_approved",
		"sees 2 points of tenant a, 0 of tenant b",
		"tenant_conflict",
		"sees only: small",
		"budget_exhausted",
		"stream cut off at budget",
		"audit chain: OK",
		"expectations held",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestQuickstartRerunSameDir reuses an existing directory (CA and all).
func TestQuickstartRerunSameDir(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 2; i++ {
		var out bytes.Buffer
		if err := Run(context.Background(), Options{Dir: dir, Out: &out, Generous: true}); err != nil {
			t.Fatalf("run %d: %v\n%s", i, err, out.String())
		}
	}
}
