package mcp

import (
	"strings"
	"testing"
	"time"
)

// TestParseOptions: strict options, every problem reported at once.
func TestParseOptions(t *testing.T) {
	o, err := ParseOptions(map[string]any{"allowed_origins": []any{"https://a"}, "session_ttl": "5m", "extra_methods": map[string]any{"acme/x": "admin"}})
	if err != nil || o.SessionTTL != 5*time.Minute || o.ExtraMethods["acme/x"] != "admin" || o.MaxMessageBytes != DefaultMaxMessageBytes {
		t.Fatalf("%+v %v", o, err)
	}
	_, err = ParseOptions(map[string]any{"bogus": 1, "session_ttl": "-1s", "pin_mode": "loud", "extra_methods": map[string]any{"x": "root"}})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{`unknown option "bogus"`, "session_ttl", "pin_mode", "extra_methods: x"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := ParseOptions(map[string]any{"pin_mode": "warn"}); err == nil {
		t.Error("pin_mode without pins_file accepted")
	}
	if o, _ := ParseOptions(map[string]any{"pins_file": "p.json"}); o.PinMode != PinEnforce {
		t.Error("pin mode does not default to enforce")
	}
	if _, err := New(map[string]map[string]any{"be": {"pins_file": "/nonexistent/pins.json"}}, Deps{}); err == nil {
		t.Error("missing pins file accepted")
	}
}

// TestExtraMethods: a method unknown to Warden passes only when listed.
func TestExtraMethods(t *testing.T) {
	up, cnt := echoUpstream(t)
	p := mustNew(t, map[string]any{"extra_methods": map[string]any{"acme/reindex": "admin"}}, nil)
	h := newHarness(t, p, up.URL, rule{allow: true})
	if st, body, _ := rawPost(t, h.srv.URL, alice, nil, `{"jsonrpc":"2.0","id":1,"method":"acme/reindex"}`); st != 200 {
		t.Fatalf("listed method: %d %s", st, body)
	}
	if st, body, _ := rawPost(t, h.srv.URL, alice, nil, `{"jsonrpc":"2.0","id":2,"method":"acme/drop"}`); st != 403 || !strings.Contains(body, CodeUnknownMethod) {
		t.Fatalf("unlisted method: %d %s", st, body)
	}
	if cnt.count() != 1 {
		t.Fatalf("upstream saw %d", cnt.count())
	}
}
