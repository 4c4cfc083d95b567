package mcp

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/wardenhq/warden/internal/protocol"
)

// FuzzParse: Parse never panics, and what Forward sends is a fixed point:
// parsing the forwarded bytes yields the same calls (canonical round trip,
// so upstream sees exactly what policy decided).
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "requests", "*.http"))
	for _, file := range files {
		c := readReqCase(f, file)
		f.Add(c.hdr.Get(hdrVersion), c.body)
	}
	p := mustNew(f, nil, nil)
	f.Fuzz(func(t *testing.T, version string, body []byte) {
		hdr := http.Header{}
		if version != "" {
			hdr.Set(hdrVersion, version)
		}
		x, err := parseReq(p, hdr, body)
		if err != nil {
			if pe := protocol.AsError(err); pe.Status < 400 || pe.Status > 499 {
				t.Fatalf("parse refusal with status %d: %v", pe.Status, err)
			}
			return
		}
		calls := x.Calls()
		out, err := x.Forward(context.Background(), allow(len(calls)))
		if err != nil || out == nil {
			return
		}
		y, err := parseReq(p, hdr, out)
		if err != nil {
			t.Fatalf("forwarded bytes refused: %v\n%s", err, out)
		}
		a, errA := json.Marshal(callsTree(calls, x))
		b, errB := json.Marshal(callsTree(y.Calls(), x))
		if errA != nil || errB != nil || string(a) != string(b) {
			t.Fatalf("forwarded request decides differently:\n%s\n%s", a, b)
		}
	})
}

// callsTree keeps the calls that were forwarded.
func callsTree(calls []protocol.Call, x *exchange) []any {
	var out []any
	for _, c := range calls {
		if known, ok := c.Resource["known"].(bool); ok && !known {
			continue
		}
		if c.Operation == "response" {
			continue
		}
		out = append(out, map[string]any{"a": c.Action, "o": c.Operation, "r": c.Resource})
	}
	return out
}

// FuzzStream: whatever the server streams, the client gets canonical
// events of valid JSON-RPC and never a message policy denied.
func FuzzStream(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "responses", "*.sse"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	p := mustNew(f, nil, nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := filterStream(t, p, data, denySampling)
		if err != nil {
			return
		}
		checkStream(t, out)
	})
}
