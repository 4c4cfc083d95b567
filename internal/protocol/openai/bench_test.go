package openai

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/wardenhq/warden/internal/protocol"
	"github.com/wardenhq/warden/internal/sse"
)

// BenchmarkParseForward16K is the request-path cost Warden adds to a 16 KiB
// chat request: strict parse, classify, canonical re-encode (policy not
// included).
func BenchmarkParseForward16K(b *testing.B) {
	body, err := os.ReadFile("testdata/chat16k.json")
	if err != nil {
		b.Fatal(err)
	}
	p := New(Config{Default: Limits{MaxTokensCap: 4096}})
	r := httptest.NewRequest("POST", "http://warden.test/v1/chat/completions", nil)
	r.Header.Set("Content-Type", "application/json")
	req := &protocol.Request{HTTP: r, Body: body}
	ds := allow(1)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		x, err := p.Parse(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		_ = x.Calls()
		if _, err := x.Forward(context.Background(), ds); err != nil {
			b.Fatal(err)
		}
	}
}

type nopMeter struct{}

func (nopMeter) Charge(context.Context, int64) error { return nil }

// BenchmarkStreamChunk is the per-chunk cost of metering pass-through:
// SSE parse, JSON parse of the chunk, estimate, charge, canonical re-emit.
func BenchmarkStreamChunk(b *testing.B) {
	const chunk = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","system_fingerprint":"fp","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null,"logprobs":null}],"usage":null}` + "\n\n"
	const perStream = 1000
	stream := strings.Repeat(chunk, perStream)
	p := New(Config{})
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	buf := make([]byte, 32<<10)
	var body io.ReadCloser
	for i := 0; b.Loop(); i++ {
		if i%perStream == 0 {
			x := &exchange{p: p, lim: p.cfg.Default, op: opChat, stream: true}
			resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: io.NopCloser(strings.NewReader(stream))}
			if err := x.Response(context.Background(), resp, &protocol.ResponseEnv{Meter: nopMeter{}}); err != nil {
				b.Fatal(err)
			}
			body = resp.Body
		}
		if _, err := body.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
}

var _ = sse.Event{}
