package openai

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/wardenhq/warden/internal/protocol"
)

// FuzzParse checks Parse never panics, fails only with *protocol.Error 4xx,
// and that whatever it accepts forwards to a body that classifies the same.
func FuzzParse(f *testing.F) {
	for _, c := range loadGolden(f, "testdata/requests") {
		if c.Body != nil && c.Method == "POST" {
			f.Add(c.Path, []byte(*c.Body))
		}
	}
	p := New(Config{Default: Limits{MaxN: 4, MaxTokensCap: 1 << 20}})
	f.Fuzz(func(t *testing.T, path string, body []byte) {
		req := func(b []byte) *protocol.Request {
			r := httptest.NewRequest("POST", "http://warden.test/", nil)
			r.URL.Path = path
			r.Header.Set("Content-Type", "application/json")
			return &protocol.Request{HTTP: r, Body: b}
		}
		x, err := p.Parse(context.Background(), req(body))
		if err != nil {
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Status < 400 || pe.Status > 499 {
				t.Fatalf("Parse error %v is not a 4xx *protocol.Error", err)
			}
			return
		}
		fwd, err := x.Forward(context.Background(), allow(len(x.Calls())))
		if err != nil {
			t.Fatalf("Forward: %v", err)
		}
		if fwd == nil {
			return
		}
		x2, err := p.Parse(context.Background(), req(fwd))
		if err != nil {
			t.Fatalf("forwarded body rejected: %v\n%s", err, fwd)
		}
		if a, b := canonicalCalls(t, x.Calls()), canonicalCalls(t, x2.Calls()); a != b {
			// Only the include_usage injection may differ, and it changes
			// no call field.
			t.Fatalf("forwarded body classifies differently:\n%s\n%s", a, b)
		}
	})
}
