package mcp

import (
	"context"
	"net/http"
	"testing"
)

// TestParseForwardAllocs keeps the per-request path on its allocation
// budget (measured 107 including the test's own request construction).
func TestParseForwardAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation budget")
	}
	p := mustNew(t, nil, nil)
	body := []byte(`{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/data/report.csv","lines":[1,200]}}}`)
	hdr := http.Header{hdrVersion: {Rev20251125}}
	n := testing.AllocsPerRun(200, func() {
		x, err := parseReq(p, hdr, body)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := x.Forward(context.Background(), allow(1)); err != nil {
			t.Fatal(err)
		}
	})
	if n > 130 {
		t.Fatalf("Parse+Forward of a tools/call: %.0f allocs, budget 130", n)
	}
}
