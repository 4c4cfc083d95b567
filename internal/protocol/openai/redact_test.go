package openai

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wardenhq/warden/internal/protocol"
)

const redactKey = "AKIAZ3MKQWERTY7N5X2P"

// keyRedactor stands in for the guard scanner: it replaces one known secret.
func keyRedactor(_ context.Context, s string) (string, bool) {
	return strings.ReplaceAll(s, redactKey, "[REDACTED:secret.aws-access-token]"), true
}

func redactExchange(t *testing.T, p *Protocol, body string, obl map[string]any) (protocol.Exchange, error) {
	t.Helper()
	return redactExchangeAt(t, p, "/v1/chat/completions", body, obl)
}

func redactExchangeAt(t *testing.T, p *Protocol, path, body string, obl map[string]any) (protocol.Exchange, error) {
	t.Helper()
	r := httptest.NewRequest("POST", path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	x, err := p.Parse(context.Background(), &protocol.Request{HTTP: r, Body: []byte(body), Backend: "llm"})
	if err != nil {
		t.Fatal(err)
	}
	ds := make([]protocol.Decision, len(x.Calls()))
	for i := range ds {
		ds[i] = protocol.Decision{Allow: true, Obligations: obl}
	}
	_, err = x.Forward(context.Background(), ds)
	return x, err
}

func TestRedactObligation(t *testing.T) {
	p := New(Config{}).WithRedactor(keyRedactor)
	const chat = `{"model":"small","messages":[{"role":"user","content":"hi"}]}`
	upstream := `{"id":"c1","object":"chat.completion","model":"small","choices":[{"index":0,"message":{"role":"assistant","content":"use ` + redactKey + ` now"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`

	x, err := redactExchange(t, p, chat, map[string]any{"redact": true})
	if err != nil {
		t.Fatal(err)
	}
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(upstream))}
	if err := x.Response(context.Background(), resp, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	if bytes.Contains(got, []byte(redactKey)) || !bytes.Contains(got, []byte("[REDACTED:secret.aws-access-token]")) {
		t.Fatalf("response not redacted: %s", got)
	}
	if resp.ContentLength != int64(len(got)) {
		t.Errorf("Content-Length %d for %d bytes", resp.ContentLength, len(got))
	}
	if x.Audit()["redacted"] != 1 {
		t.Errorf("audit = %v", x.Audit())
	}

	// Without the obligation the response passes unchanged.
	x, err = redactExchange(t, p, chat, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp = &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(upstream))}
	if err := x.Response(context.Background(), resp, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(resp.Body); string(got) != upstream {
		t.Errorf("unobliged response changed: %s", got)
	}

	// A scan that cannot finish withholds the response.
	withheld := New(Config{}).WithRedactor(func(context.Context, string) (string, bool) { return "", false })
	x, err = redactExchange(t, withheld, chat, map[string]any{"redact": true})
	if err != nil {
		t.Fatal(err)
	}
	resp = &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(upstream))}
	var pe *protocol.Error
	if err := x.Response(context.Background(), resp, nil); !errors.As(err, &pe) || pe.Code != protocol.CodeGuardBlocked {
		t.Errorf("over-budget redaction: %v", err)
	}
}

// TestRedactObligationRefused: where redaction cannot be applied the
// request is refused, never forwarded unredacted.
func TestRedactObligationRefused(t *testing.T) {
	with := New(Config{}).WithRedactor(keyRedactor)
	for _, tc := range []struct {
		name string
		p    *Protocol
		body string
		obl  any
	}{
		{"no redactor", New(Config{}), `{"model":"small","messages":[{"role":"user","content":"hi"}]}`, true},
		{"stream", with, `{"model":"small","stream":true,"messages":[{"role":"user","content":"hi"}]}`, true},
		{"not true", with, `{"model":"small","messages":[{"role":"user","content":"hi"}]}`, "yes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := redactExchange(t, tc.p, tc.body, map[string]any{"redact": tc.obl})
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code != CodeObligationRejected || pe.Status != 403 {
				t.Fatalf("want 403 %s, got %v", CodeObligationRejected, err)
			}
		})
	}
	// Embeddings return no generated text: redact is a no-op there.
	if _, err := redactExchangeAt(t, with, "/v1/embeddings", `{"model":"small","input":"x"}`, map[string]any{"redact": true}); err != nil {
		t.Fatalf("embeddings with redact: %v", err)
	}
	// Responses carry generated text Warden does not redact yet: refused.
	_, err := redactExchangeAt(t, with, "/v1/responses", `{"model":"small","input":"x"}`, map[string]any{"redact": true})
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != CodeObligationRejected {
		t.Fatalf("responses with redact: %v", err)
	}
}
