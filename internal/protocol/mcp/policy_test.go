package mcp

import (
	"context"
	"net/http"
	"testing"

	"github.com/wardenhq/warden/internal/protocol"
)

// TestRealPolicyEngine: the calls this package builds are accepted by the
// real embedded OPA engine with the default library (numbers inside tool
// arguments included) and decided as the roles file says.
func TestRealPolicyEngine(t *testing.T) {
	authz := opaAuthz(t)
	p := mustNew(t, nil, nil)
	for _, tc := range []struct {
		body  string
		allow bool
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tool_007","arguments":{"path":"/x","lines":[1,2.5,-3e2],"deep":{"n":12345678901234567890}}}}`, true},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tool_100","arguments":{"n":1}}}`, false},
	} {
		x, err := parseReq(p, http.Header{hdrVersion: {Rev20251125}}, []byte(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		ds, err := authz(context.Background(), x.Calls())
		if err != nil {
			t.Fatalf("engine refused the input: %v", err)
		}
		if ds[0].Allow != tc.allow {
			t.Fatalf("%s: allow=%v reasons=%v", tc.body, ds[0].Allow, ds[0].Reasons)
		}
	}
	// Server→client sampling: a coarse "*" grant does not allow it; only a
	// role listing server_request does.
	sampling := &message{kind: kindRequest, id: "s1", idKey: "s:s1", method: "sampling/createMessage", params: map[string]any{}}
	x, err := parseReq(p, http.Header{hdrVersion: {Rev20251125}}, []byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := x.serverCall(sampling)
	if !ok {
		t.Fatal("no call for sampling")
	}
	for perms, want := range map[string]bool{
		"\n        - {backend: be, actions: [\"*\"]}\n":          false,
		"\n        - {backend: be, actions: [server_request]}\n": true,
	} {
		ds, err := opaAuthzWith(t, perms)(context.Background(), []protocol.Call{c})
		if err != nil {
			t.Fatal(err)
		}
		if ds[0].Allow != want {
			t.Errorf("permissions %q: sampling allow=%v, want %v (%v)", perms, ds[0].Allow, want, ds[0].Reasons)
		}
	}
}
