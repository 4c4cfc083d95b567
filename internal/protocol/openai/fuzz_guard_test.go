package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
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

// FuzzResponsesRedact is FuzzStreamRedact for the Responses API: the reply
// streams as response.output_text.delta events cut at fuzzer-chosen places
// (beside a reasoning summary and function call arguments), delivered in
// fuzzer-chosen reads. The client never sees the key, the text it
// assembles from the deltas and the text of response.output_text.done both
// equal the whole reply redacted at once, and sequence numbers increase.
func FuzzResponsesRedact(f *testing.F) {
	f.Add("The key is "+awsKey+" for the bucket.", []byte{5, 17, 3}, uint8(7))
	f.Add(awsKey, []byte{1, 1, 1, 1}, uint8(1))
	f.Add("mail jane.doe@example.com or "+awsKey+"\n-----BEGIN", []byte{30}, uint8(64))
	g := testGuard(f)
	f.Fuzz(func(t *testing.T, prefix string, cuts []byte, read uint8) {
		if len(prefix) > 2048 || len(cuts) > 64 || !utf8.ValidString(prefix) {
			return
		}
		reply := prefix + " " + awsKey + " end"
		want, _, ok := g.Redact(context.Background(), protocol.GuardResponse, reply)
		planted := ok && !strings.Contains(want, awsKey)
		body := strings.Join(respStream([]string{"thinking"}, llmtest.CutDeltas(reply, cuts), []string{`{}`}), "")

		x, err := guardExchange(t, g, "/v1/responses", streamResponses, redactObl)
		if err != nil {
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
		if err != nil {
			return
		}
		r := readResponses(t, out)
		if slices.Contains(r.typs, "error") {
			return // cut as malformed
		}
		for k := 1; k < len(r.seqs); k++ {
			if r.seqs[k] <= r.seqs[k-1] {
				t.Fatalf("sequence numbers %v", r.seqs)
			}
		}
		if !ok {
			return
		}
		if got := r.text["response.output_text.delta"]; got != want {
			t.Fatalf("client text %q\nwant %q", got, want)
		}
		i := slices.Index(r.typs, "response.output_text.done")
		var d struct{ Text string }
		if i < 0 || json.Unmarshal([]byte(r.data[i]), &d) != nil || d.Text != want {
			t.Fatalf("done text %q\nwant %q", d.Text, want)
		}
	})
}
