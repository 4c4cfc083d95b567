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
		var deltas []string
		rest := reply
		for _, c := range cuts {
			n := int(c) % (len(rest) + 1)
			for n < len(rest) && !utf8.RuneStart(rest[n]) {
				n++ // a delta is a JSON string: whole runes
			}
			deltas = append(deltas, rest[:n])
			rest = rest[n:]
		}
		deltas = append(deltas, rest)
		body := strings.Join(streamOf("content", deltas...), "")

		x, err := guardExchange(t, g, "/v1/chat/completions", streamChat, redactObl)
		if err != nil {
			t.Fatal(err)
		}
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}},
			Body: io.NopCloser(&chunkedReader{b: []byte(body), n: int(read%97) + 1})}
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

// chunkedReader returns at most n bytes per Read, as a network would.
type chunkedReader struct {
	b []byte
	n int
}

func (r *chunkedReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n, len(r.b))
	copy(p, r.b[:k])
	r.b = r.b[k:]
	return k, nil
}
