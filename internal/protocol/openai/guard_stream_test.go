package openai

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
	"github.com/wardenhq/warden/internal/sse"
)

// deltaChunk is a chat chunk whose choice carries delta as given.
func deltaChunk(index any, delta map[string]any, finish string) string {
	var fr any
	if finish != "" {
		fr = finish
	}
	return event(map[string]any{"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
		"choices": []any{map[string]any{"index": index, "delta": delta, "finish_reason": fr, "logprobs": nil}}})
}

// runStream runs body through an exchange for req (a streamed chat by
// default) under obl and returns what the client reads, the read error and
// the exchange (for its audit).
func runStream(t *testing.T, obl map[string]any, req string, body io.Reader) ([]byte, error, protocol.Exchange) {
	t.Helper()
	if req == "" {
		req = streamChat
	}
	x, err := guardExchange(t, testGuard(t), "/v1/chat/completions", req, obl)
	if err != nil {
		t.Fatal(err)
	}
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: io.NopCloser(body)}
	if err := x.Response(context.Background(), resp, &protocol.ResponseEnv{}); err != nil {
		t.Fatalf("Response: %v", err)
	}
	out, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return out, err, x
}

func responseGuard(t *testing.T, x protocol.Exchange) map[string]any {
	t.Helper()
	rg, ok := x.Audit()["response_guard"].(map[string]any)
	if !ok {
		t.Fatalf("no response_guard in %v", x.Audit())
	}
	return rg
}

// TestStreamRedactToolCalls: under redact, tool call arguments (the main
// way a model hands data to the outside), legacy function_call arguments,
// the audio transcript and reasoning_content are redacted like content,
// whatever the cut of the key between fragments.
func TestStreamRedactToolCalls(t *testing.T) {
	tool := func(args string) map[string]any {
		return map[string]any{"tool_calls": []any{map[string]any{"index": 1, "function": map[string]any{"arguments": args}}}}
	}
	for _, tc := range []struct {
		name string
		mk   func(string) map[string]any
		get  func(map[string]any) string // reads the text back from a client delta
	}{
		{"tool_calls", tool, func(d map[string]any) string {
			var s string
			calls, _ := d["tool_calls"].([]any)
			for _, c := range calls {
				if fn, _ := c.(map[string]any)["function"].(map[string]any); fn != nil {
					a, _ := fn["arguments"].(string)
					s += a
				}
			}
			return s
		}},
		{"function_call", func(s string) map[string]any { return map[string]any{"function_call": map[string]any{"arguments": s}} }, func(d map[string]any) string {
			fc, _ := d["function_call"].(map[string]any)
			s, _ := fc["arguments"].(string)
			return s
		}},
		{"audio transcript", func(s string) map[string]any {
			return map[string]any{"audio": map[string]any{"id": "a1", "transcript": s}}
		}, func(d map[string]any) string {
			a, _ := d["audio"].(map[string]any)
			s, _ := a["transcript"].(string)
			return s
		}},
		{"reasoning_content", func(s string) map[string]any { return map[string]any{"reasoning_content": s} }, func(d map[string]any) string {
			s, _ := d["reasoning_content"].(string)
			return s
		}},
	} {
		for _, cut := range []int{0, 1, 7, 19, 20} {
			parts := []string{`{"key":"` + awsKey[:cut], awsKey[cut:] + `","n":1}`}
			first := tc.mk("")
			if tc.name == "tool_calls" {
				first = map[string]any{"tool_calls": []any{map[string]any{"index": 1, "id": "call_1", "type": "function", "function": map[string]any{"name": "put", "arguments": ""}}}}
			}
			body := deltaChunk(0, map[string]any{"role": "assistant"}, "") + deltaChunk(0, first, "") +
				deltaChunk(0, tc.mk(parts[0]), "") + deltaChunk(0, tc.mk(parts[1]), "") + deltaChunk(0, map[string]any{}, "tool_calls") + done
			out, err, x := runStream(t, redactObl, "", strings.NewReader(body))
			if err != nil || strings.Contains(string(out), awsKey) {
				t.Fatalf("%s/%d: err %v, key reached the client: %s", tc.name, cut, err, out)
			}
			var got string
			rd := sse.NewReader(strings.NewReader(string(out)), sse.ReaderOptions{})
			for {
				e, err := rd.Next()
				if err != nil {
					break
				}
				d := e.Data
				if d == "[DONE]" {
					continue
				}
				v, _ := parseJSON(d)
				cs, _ := v["choices"].([]any)
				for _, c := range cs {
					delta, _ := c.(map[string]any)["delta"].(map[string]any)
					got += tc.get(delta)
				}
			}
			if want := `{"key":"` + awsRedacted + `","n":1}`; got != want {
				t.Fatalf("%s/%d: client text %q, want %q", tc.name, cut, got, want)
			}
			if rg := responseGuard(t, x); rg["redacted"] != true || rg["findings"] != 1 {
				t.Fatalf("%s/%d: audit %v", tc.name, cut, rg)
			}
		}
	}
}

func parseJSON(s string) (map[string]any, error) {
	v, err := jsonstrictParse(s)
	m, _ := v.(map[string]any)
	return m, err
}

// TestStreamRedactFailsClosed: under redact, text Warden cannot place, and
// shapes that would make it hold unbounded state, cut the stream with
// upstream_malformed before anything of them goes out.
func TestStreamRedactFailsClosed(t *testing.T) {
	const n20 = `{"model":"gpt-4o","stream":true,"n":20,"messages":[{"role":"user","content":"hi"}]}`
	for _, tc := range []struct {
		name, req, chunk string
	}{
		{"unknown delta field", "", deltaChunk(0, map[string]any{"annotations": []any{map[string]any{"title": awsKey}}}, "")},
		{"unknown tool call field", "", deltaChunk(0, map[string]any{"tool_calls": []any{map[string]any{"index": 0, "note": awsKey}}}, "")},
		{"content not a string", "", deltaChunk(0, map[string]any{"content": []any{awsKey}}, "")},
		{"audio data", "", deltaChunk(0, map[string]any{"audio": map[string]any{"id": "a", "data": "UklGR"}}, "")},
		{"error with choices", "", `data: {"error":{"message":"x"},"choices":[{"index":0,"delta":{"content":"` + awsKey + `"}}]}` + "\n\n"},
		{"index at n", "", deltaChunk(1, map[string]any{"content": awsKey}, "")},
		{"index above 16", n20, deltaChunk(17, map[string]any{"content": awsKey}, "")},
		{"index not an integer", "", deltaChunk("0", map[string]any{"content": awsKey}, "")},
		{"index missing", "", `data: {"choices":[{"delta":{"content":"` + awsKey + `"}}]}` + "\n\n"},
		{"tool call index above 64", "", deltaChunk(0, map[string]any{"tool_calls": []any{map[string]any{"index": 65, "function": map[string]any{"arguments": awsKey}}}}, "")},
		{"message in a chat stream", "", `data: {"choices":[{"index":0,"delta":{},"message":{"content":"` + awsKey + `"}}]}` + "\n\n"},
		{"delta a string", "", `data: {"choices":[{"index":0,"delta":"` + awsKey + `"}]}` + "\n\n"},
		{"delta an array", "", `data: {"choices":[{"index":0,"delta":["` + awsKey + `"]}]}` + "\n\n"},
		{"unknown choice field", "", `data: {"choices":[{"index":0,"delta":{},"content":"` + awsKey + `"}]}` + "\n\n"},
		{"unknown top-level field", "", `data: {"id":"c","note":"` + awsKey + `","choices":[{"index":0,"delta":{"content":"x"}}]}` + "\n\n"},
		{"unknown top-level field, no choices", "", `data: {"id":"c","note":"` + awsKey + `","choices":[]}` + "\n\n"},
		{"choices an object", "", `data: {"choices":{"index":0,"delta":{"content":"` + awsKey + `"}}}` + "\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lim := Limits{MaxN: 20}
			out, rerr, xx := runStreamLimits(t, lim, redactObl, cmpOr(tc.req, streamChat), strings.NewReader(deltaChunk(0, map[string]any{"content": "ok "}, "")+tc.chunk+done))
			if rerr != nil || strings.Contains(string(out), awsKey) || !strings.Contains(string(out), CodeUpstreamMalformed) || strings.Contains(string(out), "[DONE]") {
				t.Fatalf("err %v, client read %s", rerr, out)
			}
			if a := xx.Audit(); a["cutoff_reason"] != CodeUpstreamMalformed {
				t.Fatalf("audit %v", a)
			}
		})
	}
	// Fields that carry no model text pass; "error": null is no error.
	body := deltaChunk(0, map[string]any{"role": "assistant", "tool_calls": []any{map[string]any{"index": 0, "id": "c", "type": "function", "function": map[string]any{"name": "f", "arguments": ""}}}}, "") +
		`data: {"error":null,"choices":[{"index":0,"delta":{"content":"k ` + awsKey + ` ok"},"finish_reason":null}]}` + "\n\n" +
		deltaChunk(0, map[string]any{}, "stop") + done
	out, err, x := runStream(t, redactObl, "", strings.NewReader(body))
	if err != nil || strings.Contains(string(out), awsKey) || !strings.Contains(string(out), awsRedacted) || !strings.HasSuffix(string(out), done) {
		t.Fatalf("err %v, client read %s", err, out)
	}
	if rg := responseGuard(t, x); rg["findings"] != 1 {
		t.Fatalf("audit %v", rg)
	}
}

// TestStreamRedactErrorChunk: under redact, an error chunk (no choices) is
// redacted whole, and the chunk carrying held text has no field of the
// upstream's envelope outside the known ones.
func TestStreamRedactErrorChunk(t *testing.T) {
	body := deltaChunk(0, map[string]any{"content": "ok "}, "") +
		`data: {"error":{"message":"bad ` + awsKey + `","type":"server_error","param":null,"code":null}}` + "\n\n" + done
	out, err, x := runStream(t, redactObl, "", strings.NewReader(body))
	if err != nil || strings.Contains(string(out), awsKey) || !strings.Contains(string(out), awsRedacted) {
		t.Fatalf("err %v, client read %s", err, out)
	}
	if rg := responseGuard(t, x); rg["findings"] != 1 {
		t.Fatalf("audit %v", rg)
	}
	body = `data: {"id":"c","object":"chat.completion.chunk","model":"m","extra":1,"choices":[{"index":0,"delta":{"content":"held text"},"finish_reason":null}]}` + "\n\n" + done
	out, err, _ = runStream(t, redactObl, "", strings.NewReader(body))
	if err != nil || !strings.Contains(string(out), "held text") || strings.Count(string(out), `"extra"`) != 1 {
		t.Fatalf("err %v, client read %s", err, out)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// runStreamLimits is runStream on a backend with lim.
func runStreamLimits(t *testing.T, lim Limits, obl map[string]any, req string, body io.Reader) ([]byte, error, protocol.Exchange) {
	t.Helper()
	r := httptestRequest(req)
	p := New(Config{Backends: map[string]Limits{"llm": lim}})
	x, err := p.Parse(context.Background(), &protocol.Request{HTTP: r, Body: []byte(req), Backend: "llm", Guard: testGuard(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.Forward(context.Background(), []protocol.Decision{{Allow: true, Obligations: obl}}); err != nil {
		t.Fatal(err)
	}
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: io.NopCloser(body)}
	if err := x.Response(context.Background(), resp, &protocol.ResponseEnv{}); err != nil {
		t.Fatalf("Response: %v", err)
	}
	out, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return out, err, x
}

// failingReader yields data, then fails like a broken upstream.
type failingReader struct{ r io.Reader }

func (f failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

// TestStreamScanOnlyEveryPath: scan-only, the audit's "scanned" holds on
// every way a stream ends: the last batch (under 512 bytes) is scanned when
// the client goes away or the upstream breaks, text after finish_reason
// and data after [DONE] are scanned, and an audit taken before the end
// says "partial".
func TestStreamScanOnlyEveryPath(t *testing.T) {
	secret := deltaChunk(0, map[string]any{"content": "the key is " + awsKey}, "")
	check := func(t *testing.T, x protocol.Exchange, cutoff string) {
		t.Helper()
		rg := responseGuard(t, x)
		if rg["scanned"] != true || rg["findings"] != 1 || !slices.Equal(rg["rules"].([]string), []string{awsRule}) {
			t.Fatalf("audit response_guard %v", rg)
		}
		if a := x.Audit(); cutoff != "" && a["cutoff_reason"] != cutoff {
			t.Fatalf("audit %v", a)
		}
	}
	t.Run("upstream error", func(t *testing.T) {
		out, err, x := runStream(t, nil, "", failingReader{strings.NewReader(secret)})
		if err == nil || !strings.Contains(string(out), awsKey) {
			t.Fatalf("err %v out %s", err, out)
		}
		check(t, x, protocol.CodeUpstreamError)
	})
	t.Run("client closed", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() { _, _ = io.WriteString(pw, secret) }() // then the upstream goes quiet
		x, err := guardExchange(t, testGuard(t), "/v1/chat/completions", streamChat, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: pr}
		if err := x.Response(context.Background(), resp, &protocol.ResponseEnv{}); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		var got []byte
		for !strings.Contains(string(got), awsKey) {
			n, err := resp.Body.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, buf[:n]...)
		}
		if rg := responseGuard(t, x); rg["scanned"] != "partial" {
			t.Fatalf("audit before the end %v", rg)
		}
		resp.Body.Close()
		pw.Close()
		check(t, x, "client_closed")
	})
	t.Run("after finish_reason", func(t *testing.T) {
		body := deltaChunk(0, map[string]any{"content": "hi"}, "") + deltaChunk(0, map[string]any{}, "stop") + secret + done
		out, err, x := runStream(t, nil, "", strings.NewReader(body))
		if err != nil || string(out) != body {
			t.Fatalf("err %v, stream changed %s", err, out)
		}
		check(t, x, "")
	})
	t.Run("after [DONE]", func(t *testing.T) {
		body := deltaChunk(0, map[string]any{"content": "hi"}, "stop") + done + secret
		out, err, x := runStream(t, nil, "", strings.NewReader(body))
		if err != nil || string(out) != body {
			t.Fatalf("err %v, stream changed %s", err, out)
		}
		check(t, x, "")
	})
	t.Run("tool call arguments and unknown fields", func(t *testing.T) {
		for _, d := range []map[string]any{
			{"tool_calls": []any{map[string]any{"index": 0, "function": map[string]any{"arguments": `{"k":"` + awsKey + `"}`}}}},
			{"annotations": []any{map[string]any{"title": awsKey}}},
		} {
			body := deltaChunk(0, d, "") + deltaChunk(0, map[string]any{}, "stop") + done
			out, err, x := runStream(t, nil, "", strings.NewReader(body))
			if err != nil || string(out) != body {
				t.Fatalf("err %v, stream changed %s", err, out)
			}
			check(t, x, "")
		}
	})
}

func jsonstrictParse(s string) (any, error) { return jsonstrict.Parse([]byte(s), jsonstrict.Options{}) }

func httptestRequest(body string) *http.Request {
	r := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

// TestNonStreamRedactEveryField: a non-streamed message is redacted in
// every string: tool call and function call arguments, the audio
// transcript, reasoning_content; a key in an object key withholds it.
func TestNonStreamRedactEveryField(t *testing.T) {
	const chat = `{"model":"small","messages":[{"role":"user","content":"hi"}]}`
	run := func(t *testing.T, message string) ([]byte, error, protocol.Exchange) {
		x, err := guardExchange(t, testGuard(t), "/v1/chat/completions", chat, redactObl)
		if err != nil {
			t.Fatal(err)
		}
		body := `{"id":"c1","object":"chat.completion","model":"small","choices":[{"index":0,"message":` + message + `,"finish_reason":"tool_calls"}]}`
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body))}
		if err := x.Response(context.Background(), resp, nil); err != nil {
			return nil, err, x
		}
		got, _ := io.ReadAll(resp.Body)
		return got, nil, x
	}
	msg := `{"role":"assistant","content":null,"reasoning_content":"I saw ` + awsKey + `","audio":{"id":"a","transcript":"say ` + awsKey + `"},` +
		`"tool_calls":[{"id":"c","type":"function","function":{"name":"put","arguments":"{\"k\":\"` + awsKey + `\"}"}}],"function_call":{"name":"put","arguments":"` + awsKey + `"}}`
	got, err, x := run(t, msg)
	if err != nil || strings.Contains(string(got), awsKey) || strings.Count(string(got), awsRedacted) != 4 {
		t.Fatalf("err %v, response %s", err, got)
	}
	if rg := responseGuard(t, x); rg["findings"] != 4 || rg["redacted"] != true {
		t.Fatalf("audit %v", rg)
	}
	var pe *protocol.Error
	for _, m := range []string{
		`{"role":"assistant","content":"x","metadata":{"` + awsKey + `":1}}`,
		`{"role":"assistant","content":"x","audio":{"id":"a","data":"UklGR","transcript":"x"}}`,
	} {
		if _, err, _ := run(t, m); !errors.As(err, &pe) || pe.Code != protocol.CodeGuardBlocked {
			t.Fatalf("%s: want guard_blocked, got %v", m, err)
		}
	}
	// Text outside choices[].message is redacted too: unknown choice and
	// top-level fields, choices not an array.
	for _, body := range []string{
		`{"id":"c1","object":"chat.completion","model":"small","note":"` + awsKey + `","choices":[{"index":0,"message":{"role":"assistant","content":"x"},"finish_reason":"stop"}]}`,
		`{"id":"c1","object":"chat.completion","model":"small","choices":[{"index":0,"message":{"role":"assistant","content":"x"},"content":"` + awsKey + `","finish_reason":"stop"}]}`,
		`{"id":"c1","object":"chat.completion","model":"small","choices":{"index":0,"message":{"role":"assistant","content":"` + awsKey + `"}}}`,
	} {
		x, err := guardExchange(t, testGuard(t), "/v1/chat/completions", chat, redactObl)
		if err != nil {
			t.Fatal(err)
		}
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body))}
		if err := x.Response(context.Background(), resp, nil); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		got, _ := io.ReadAll(resp.Body)
		if strings.Contains(string(got), awsKey) || !strings.Contains(string(got), awsRedacted) || !strings.Contains(string(got), `"id":"c1"`) {
			t.Fatalf("%s: response %s", body, got)
		}
	}
	// Speech cannot be redacted: asking for audio under redact is refused.
	_, err = guardExchange(t, testGuard(t), "/v1/chat/completions", `{"model":"m","modalities":["text","audio"],"audio":{"voice":"alloy","format":"wav"},"messages":[{"role":"user","content":"hi"}]}`, redactObl)
	if !errors.As(err, &pe) || pe.Code != CodeObligationRejected {
		t.Fatalf("audio under redact: %v", err)
	}
}
