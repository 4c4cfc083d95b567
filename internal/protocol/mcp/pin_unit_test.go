package mcp

import (
	"strings"
	"testing"
)

// TestPinsFileTampered: a pins file whose hash does not match its recorded
// definition is refused at load.
func TestPinsFileTampered(t *testing.T) {
	pins, err := NewPins("be", []map[string]any{{"name": "a", "description": "x", "inputSchema": map[string]any{"type": "object"}}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pins.Marshal()
	if _, err := ParsePins(b); err != nil {
		t.Fatalf("round trip: %v", err)
	}
	bad := strings.Replace(string(b), `"description":"x"`, `"description":"y"`, 1)
	if _, err := ParsePins([]byte(bad)); err == nil {
		t.Fatal("tampered pins accepted")
	}
}

// TestToolHashIgnoresMetaOnly: every member but _meta changes the pin.
func TestToolHashIgnoresMetaOnly(t *testing.T) {
	base := map[string]any{"name": "a", "description": "d", "inputSchema": map[string]any{"type": "object"}}
	h0, _ := ToolHash(base)
	withMeta := map[string]any{"name": "a", "description": "d", "inputSchema": map[string]any{"type": "object"}, "_meta": map[string]any{"t": "1"}}
	if h, _ := ToolHash(withMeta); h != h0 {
		t.Fatal("_meta changed the pin")
	}
	for _, k := range []string{"title", "description", "annotations", "outputSchema", "icons", "execution", "x-future"} {
		m := map[string]any{"name": "a", "description": "d", "inputSchema": map[string]any{"type": "object"}}
		m[k] = "changed"
		if h, _ := ToolHash(m); h == h0 {
			t.Errorf("%s did not change the pin", k)
		}
	}
}
