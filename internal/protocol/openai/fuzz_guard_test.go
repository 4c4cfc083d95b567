package openai

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wardenhq/warden/internal/protocol"
	"github.com/wardenhq/warden/internal/protocol/llmtest"
)

// FuzzStreamRedact feeds the chat stream filter, under the redact
// obligation, a model reply cut into deltas at fuzzer-chosen places and the
// SSE bytes delivered in fuzzer-chosen reads. Whatever the cuts: the filter
// never panics, the client never sees the AWS key planted in the reply, and
// the text the client assembles equals the whole reply redacted at once.
func FuzzStreamRedact(f *testing.F) {
	f.Add("The key is "+awsKey+" for the bucket.", []byte{5, 17, 3}, uint8(7))
	f.Add(awsKey, []byte{1, 1, 1, 1}, uint8(1))
	f.Add("mail jane.doe@example.com or "+awsKey+"\n-----BEGIN", []byte{30}, uint8(64))
	g := testGuard(f)
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
		body := strings.Join(streamOf("content", deltas...), "")

		x, err := guardExchange(t, g, "/v1/chat/completions", streamChat, redactObl)
		if err != nil {
			t.Fatal(err)
		}
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}},
			Body: io.NopCloser(llmtest.ChunkedReader([]byte(body), int(read%97)+1))}
		if err := x.Response(context.Background(), resp, &protocol.ResponseEnv{}); err != nil {
			t.Fatalf("Response: %v", err)
		}
		out, err := io.ReadAll(resp.Body)
		if err != nil {
			// A reply that is not valid UTF-8 is cut as malformed: fine, as
			// long as nothing of the key went out before.
			if planted && bytes.Contains(out, []byte(awsKey)) {
				t.Fatalf("key reached the client before the error: %q", out)
			}
			return
		}
		if planted && bytes.Contains(out, []byte(awsKey)) {
			t.Fatalf("key reached the client: %q", out)
		}
		s := readStream(t, out)
		if len(s.errors) > 0 {
			return // cut as malformed (e.g. invalid UTF-8 in the reply)
		}
		if ok && s.text["0.content"] != want {
			t.Fatalf("client text %q\nwant %q", s.text["0.content"], want)
		}
	})
}
