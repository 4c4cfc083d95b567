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

// benchDeltas is model-like output cut into deltas of 4 to 40 bytes, the
// sizes chat streams carry.
func benchDeltas(total int) []string {
	const prose = "The deployment failed because the service account lacks permission to read the secret; grant roles/secretmanager.secretAccessor to it, then redeploy. Contact ops@example.com if it persists. "
	text := strings.Repeat(prose, total/len(prose)+1)[:total]
	var out []string
	for i, n := 0, 0; n < len(text); i++ {
		k := min(4+(i*13)%37, len(text)-n)
		out = append(out, text[n:n+k])
		n += k
	}
	return out
}

// guardStream is a chat stream of deltas, canonical (as the filter
// re-emits it).
func guardStream(deltas []string) (string, int) {
	var b strings.Builder
	for _, d := range deltas {
		b.WriteString(chunk(0, "content", d, ""))
	}
	return b.String(), len(deltas)
}

// BenchmarkStreamGuard is the per-chunk cost of the chat SSE filter with 4
// to 40 byte deltas: (none) metering only, (scan) the output guard in
// scan-only mode, (redact) under the redact obligation.
func BenchmarkStreamGuard(b *testing.B) {
	g := testGuard(b)
	stream, perStream := guardStream(benchDeltas(64 << 10))
	for _, tc := range []struct {
		name string
		out  OutputGuard
	}{
		{"none", OutputGuard{}},
		{"scan", OutputGuard{G: g}},
		{"redact", OutputGuard{G: g, Redact: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p := New(Config{})
			buf := make([]byte, 64<<10)
			var body io.ReadCloser
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if i%perStream == 0 {
					x := &exchange{p: p, lim: p.cfg.Default, op: opChat, stream: true, out: tc.out}
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
		})
	}
}

// BenchmarkStreamGuardWindow is the cost of one 256-byte window of output
// (the StreamGuard's default look-behind) through the chat SSE filter, in
// 4 to 40 byte deltas: one op is 256 bytes of text in and out.
func BenchmarkStreamGuardWindow(b *testing.B) {
	g := testGuard(b)
	deltas := benchDeltas(256)
	stream, _ := guardStream(deltas)
	stream = strings.Repeat(stream, 64)
	for _, tc := range []struct {
		name string
		out  OutputGuard
	}{
		{"none", OutputGuard{}},
		{"scan", OutputGuard{G: g}},
		{"redact", OutputGuard{G: g, Redact: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p := New(Config{})
			buf := make([]byte, 64<<10)
			var body io.ReadCloser
			b.SetBytes(256)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if i%64 == 0 {
					x := &exchange{p: p, lim: p.cfg.Default, op: opChat, stream: true, out: tc.out}
					resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: io.NopCloser(strings.NewReader(stream))}
					if err := x.Response(context.Background(), resp, &protocol.ResponseEnv{Meter: nopMeter{}}); err != nil {
						b.Fatal(err)
					}
					body = resp.Body
				}
				for range deltas {
					if _, err := body.Read(buf); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
