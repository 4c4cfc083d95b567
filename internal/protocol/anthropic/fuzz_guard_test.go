package anthropic

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wardenhq/warden/internal/protocol"
	"github.com/wardenhq/warden/internal/protocol/llmtest"
)

// FuzzStreamRedact feeds the Messages stream filter, under the redact
// obligation, a reply cut into text_deltas at fuzzer-chosen places and the
// SSE bytes delivered in fuzzer-chosen reads. The filter never panics, the
// client never sees the planted AWS key, and the text block it assembles
// equals the whole reply redacted at once.
func FuzzStreamRedact(f *testing.F) {
	f.Add("The key is "+awsKey+" for the bucket.", []byte{5, 17, 3}, uint8(7))
	f.Add(awsKey, []byte{1, 1, 1, 1}, uint8(1))
	f.Add("mail jane.doe@example.com or "+awsKey+"\n-----BEGIN", []byte{30}, uint8(64))
	g := testGuard(f)
	p := New(Config{})
	f.Fuzz(func(t *testing.T, prefix string, cuts []byte, read uint8) {
		if len(prefix) > 2048 || len(cuts) > 64 || !utf8.ValidString(prefix) {
			return // an upstream's JSON strings are valid UTF-8
		}
		reply := prefix + " " + awsKey + " end"
		want, _, ok := g.Redact(context.Background(), protocol.GuardResponse, reply)
		// The fuzzer may glue text to the key so that it is no longer one
		// (AKIA...P0): then only the equality below applies.
		planted := ok && !strings.Contains(want, awsKey)
		deltas := llmtest.CutDeltas(reply, cuts)
		body := strings.Join(messageStream(deltas...), "")

		r := httptest.NewRequest("POST", "/v1/messages", strings.NewReader(streamReq))
		r.Header.Set("Content-Type", "application/json")
		x, err := p.Parse(context.Background(), &protocol.Request{HTTP: r, Body: []byte(streamReq), Backend: "llm", Guard: g})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := x.Forward(context.Background(), []protocol.Decision{{Allow: true, Obligations: redactObl}}); err != nil {
			t.Fatal(err)
		}
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}},
			Body: io.NopCloser(llmtest.ChunkedReader([]byte(body), int(read%97)+1))}
		if err := x.Response(context.Background(), resp, &protocol.ResponseEnv{}); err != nil {
			t.Fatalf("Response: %v", err)
		}
		out, err := io.ReadAll(resp.Body)
		if planted && bytes.Contains(out, []byte(awsKey)) {
			t.Fatalf("key reached the client: %q", out)
		}
		if err != nil || bytes.Contains(out, []byte(`"type":"error"`)) {
			return // cut as malformed: fine, the key did not go out
		}
		text, _ := blockText(t, out)
		if ok && text[0] != want {
			t.Fatalf("client text %q\nwant %q", text[0], want)
		}
	})
}
