package mcp

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/wardenhq/warden/internal/config"
)

// TestPinBackend runs the `warden mcp pin` workflow against a real server:
// first pin, then a re-pin after a change reports exactly what changed.
func TestPinBackend(t *testing.T) {
	counts := &toolCounts{}
	s := mcp.NewServer(&mcp.Implementation{Name: "up", Version: "1"}, &mcp.ServerOptions{PageSize: 1})
	addPathTool(s, counts, "a", "A.")
	addPathTool(s, counts, "b", "B.")
	up, _ := startUpstream(t, s, false, false)
	dir := t.TempDir()
	yaml := `identity:
  trust_domain: warden.test
  files:
    dir: certs
listeners:
  - name: data
    address: 127.0.0.1:8443
admin:
  address: 127.0.0.1:9443
  allowed_ids: [spiffe://warden.test/admin]
backends:
  - name: tools
    url: ` + up.URL + `
    kind: mcp
    tls:
      mode: plaintext
      allow_plaintext: true
    options:
      pins_file: pins/tools.json
routes:
  - path_prefix: /mcp
    backend: tools
audit:
  path: audit.jsonl
`
	path := filepath.Join(dir, "warden.yaml")
	if err := os.MkdirAll(filepath.Join(dir, "pins"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(path, []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	res, err := PinBackend(context.Background(), cfg, PinOptions{Backend: "tools"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Tools != 2 || !slices.Equal(res.Added, []string{"a", "b"}) || res.Path != filepath.Join(dir, "pins/tools.json") {
		t.Fatalf("first pin: %+v", res)
	}
	addPathTool(s, counts, "b", "B, but different.")
	addPathTool(s, counts, "c", "C.")
	s.RemoveTools("a")
	res, err = PinBackend(context.Background(), cfg, PinOptions{Backend: "tools"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Added, []string{"c"}) || !slices.Equal(res.Changed, []string{"b"}) || !slices.Equal(res.Removed, []string{"a"}) {
		t.Fatalf("re-pin diff: %+v", res)
	}
	if _, err := LoadPins(res.Path); err != nil {
		t.Fatal(err)
	}
	// Plaintext to a non-loopback address is refused.
	if _, err := PinBackend(context.Background(), cfg, PinOptions{Backend: "tools", URL: "http://192.0.2.1/mcp"}); err == nil {
		t.Fatal("plaintext to a non-loopback address accepted")
	}
}
