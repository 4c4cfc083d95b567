package anthropic

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
	"github.com/wardenhq/warden/internal/protocol/openai"
	"github.com/wardenhq/warden/internal/sse"
)

// runStream runs body through a Messages exchange under obl and returns
// what the client reads, the read error and the exchange.
func runStream(t *testing.T, obl map[string]any, body io.Reader) ([]byte, error, protocol.Exchange) {
	t.Helper()
	r := httptest.NewRequest("POST", "/v1/messages", strings.NewReader(streamReq))
	r.Header.Set("Content-Type", "application/json")
	x, err := New(Config{}).Parse(context.Background(), &protocol.Request{HTTP: r, Body: []byte(streamReq), Backend: "llm", Guard: testGuard(t)})
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

func startEvents() string {
	return ev("message_start", map[string]any{"message": map[string]any{"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
		"content": []any{}, "usage": map[string]any{"input_tokens": 3, "output_tokens": 1}}})
}

func endEvents() string {
	return ev("message_delta", map[string]any{"delta": map[string]any{"stop_reason": "end_turn"}, "usage": map[string]any{"output_tokens": 9}}) +
		ev("message_stop", map[string]any{})
}

func blockStart(idx int, block map[string]any) string {
	return ev("content_block_start", map[string]any{"index": idx, "content_block": block})
}

func blockDelta(idx int, delta map[string]any) string {
	return ev("content_block_delta", map[string]any{"index": idx, "delta": delta})
}

func blockStop(idx int) string { return ev("content_block_stop", map[string]any{"index": idx}) }

// deltaText concatenates, per block index, the given field of the deltas a
// client reads.
func deltaText(t *testing.T, raw []byte, field string) map[int]string {
	t.Helper()
	out := map[int]string{}
	rd := sse.NewReader(strings.NewReader(string(raw)), sse.ReaderOptions{})
	for {
		e, err := rd.Next()
		if err != nil {
			return out
		}
		v, err := jsonstrict.Parse([]byte(e.Data), jsonstrict.Options{})
		if err != nil {
			t.Fatalf("event %q: %v", e.Data, err)
		}
		m, _ := v.(map[string]any)
		d, _ := m["delta"].(map[string]any)
		idx, _, _ := jsonstrict.GetInt(m, "index")
		if s, ok := d[field].(string); ok {
			out[int(idx)] += s
		}
	}
}

// TestStreamRedactToolInput: tool_use input streamed as input_json_delta
// is redacted like text, whatever the cut; citations, a tool_use block
// that starts with its input and a message_start with content too.
func TestStreamRedactToolInput(t *testing.T) {
	for _, cut := range []int{0, 1, 10, 19, 20} {
		body := startEvents() + blockStart(0, map[string]any{"type": "tool_use", "id": "t", "name": "put", "input": map[string]any{}}) +
			blockDelta(0, map[string]any{"type": "input_json_delta", "partial_json": `{"k":"` + awsKey[:cut]}) +
			blockDelta(0, map[string]any{"type": "input_json_delta", "partial_json": awsKey[cut:] + `"}`}) +
			blockStop(0) + endEvents()
		out, err, x := runStream(t, redactObl, strings.NewReader(body))
		if err != nil || strings.Contains(string(out), awsKey) {
			t.Fatalf("%d: err %v, key reached the client: %s", cut, err, out)
		}
		if got := deltaText(t, out, "partial_json")[0]; got != `{"k":"`+awsRedacted+`"}` {
			t.Fatalf("%d: client input %q", cut, got)
		}
		if rg := x.Audit()["response_guard"].(map[string]any); rg["findings"] != 1 || rg["redacted"] != true {
			t.Fatalf("%d: audit %v", cut, rg)
		}
	}
	body := ev("message_start", map[string]any{"message": map[string]any{"id": "m", "type": "message", "role": "assistant", "model": "c",
		"content": []any{map[string]any{"type": "text", "text": "pre " + awsKey}}, "usage": map[string]any{"input_tokens": 3}}}) +
		blockStart(1, map[string]any{"type": "tool_use", "id": "t", "name": "put", "input": map[string]any{"k": awsKey}}) + blockStop(1) +
		blockStart(2, map[string]any{"type": "text", "text": ""}) +
		blockDelta(2, map[string]any{"type": "citations_delta", "citation": map[string]any{"type": "char_location", "cited_text": "the key " + awsKey, "document_index": 0}}) +
		blockDelta(2, map[string]any{"type": "text_delta", "text": "ok"}) + blockStop(2) + endEvents()
	out, err, x := runStream(t, redactObl, strings.NewReader(body))
	if err != nil || strings.Contains(string(out), awsKey) || strings.Count(string(out), awsRedacted) != 3 || !strings.Contains(string(out), "message_stop") {
		t.Fatalf("err %v, client read %s", err, out)
	}
	if rg := x.Audit()["response_guard"].(map[string]any); rg["findings"] != 3 {
		t.Fatalf("audit %v", rg)
	}
}

// TestStreamRedactThinking: thinking is signed and cannot be redacted:
// under redact, a finding in it cuts the stream with a guard_blocked error
// before any of the key goes out. Clean thinking passes whole.
func TestStreamRedactThinking(t *testing.T) {
	thinking := func(parts ...string) string {
		s := startEvents() + blockStart(0, map[string]any{"type": "thinking", "thinking": "", "signature": ""})
		for _, p := range parts {
			s += blockDelta(0, map[string]any{"type": "thinking_delta", "thinking": p})
		}
		return s + blockDelta(0, map[string]any{"type": "signature_delta", "signature": "c2ln"}) + blockStop(0) + endEvents()
	}
	out, err, x := runStream(t, redactObl, strings.NewReader(thinking("I will use ", awsKey[:9], awsKey[9:]+" now")))
	if err != nil || strings.Contains(string(out), awsKey[:9]) || !strings.Contains(string(out), `"code":"`+protocol.CodeGuardBlocked+`"`) || strings.Contains(string(out), "message_stop") {
		t.Fatalf("err %v, client read %s", err, out)
	}
	if a := x.Audit(); a["cutoff_reason"] != protocol.CodeGuardBlocked {
		t.Fatalf("audit %v", a)
	}
	clean := []string{"Let me ", "think about ", "this."}
	out, err, _ = runStream(t, redactObl, strings.NewReader(thinking(clean...)))
	if err != nil || deltaText(t, out, "thinking")[0] != strings.Join(clean, "") || !strings.Contains(string(out), "c2ln") {
		t.Fatalf("err %v, client read %s", err, out)
	}
}

// TestStreamRedactFailsClosed: under redact, deltas and events carrying
// text Warden does not know, and block indices past 64, cut the stream.
func TestStreamRedactFailsClosed(t *testing.T) {
	for name, e := range map[string]string{
		"unknown delta type":             blockDelta(0, map[string]any{"type": "summary_delta", "summary": awsKey}),
		"unknown event type":             ev("content_block_note", map[string]any{"index": 0, "note": awsKey}),
		"text_delta extra":               blockDelta(0, map[string]any{"type": "text_delta", "text": "a", "extra": awsKey}),
		"block index 65":                 blockDelta(65, map[string]any{"type": "text_delta", "text": awsKey}),
		"index not integer":              ev("content_block_delta", map[string]any{"index": "0", "delta": map[string]any{"type": "text_delta", "text": awsKey}}),
		"ping named content_block_delta": "event: content_block_delta\ndata: {\"type\":\"ping\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"" + awsKey + "\"}}\n\n",
		"stop named content_block_delta": "event: content_block_delta\ndata: {\"type\":\"content_block_stop\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"" + awsKey + "\"}}\n\n",
		"ping with text":                 ev("ping", map[string]any{"note": awsKey}),
		"content_block_stop with text":   ev("content_block_stop", map[string]any{"index": 0, "delta": map[string]any{"type": "text_delta", "text": awsKey}}),
		"message_delta content":          ev("message_delta", map[string]any{"delta": map[string]any{"stop_reason": "end_turn", "content": awsKey}}),
		"message_stop with text":         ev("message_stop", map[string]any{"message": awsKey}),
	} {
		t.Run(name, func(t *testing.T) {
			body := startEvents() + blockStart(0, map[string]any{"type": "text", "text": ""}) + e + blockStop(0) + endEvents()
			out, err, x := runStream(t, redactObl, strings.NewReader(body))
			if err != nil || strings.Contains(string(out), awsKey) || !strings.Contains(string(out), openai.CodeUpstreamMalformed) {
				t.Fatalf("err %v, client read %s", err, out)
			}
			if a := x.Audit(); a["cutoff_reason"] != openai.CodeUpstreamMalformed {
				t.Fatalf("audit %v", a)
			}
		})
	}
}

// TestStreamRedactErrorEvent: under redact, an error event is redacted
// whole; a tool_use block's id and name are never rewritten.
func TestStreamRedactErrorEvent(t *testing.T) {
	body := startEvents() + ev("error", map[string]any{"error": map[string]any{"type": "overloaded_error", "message": "bad " + awsKey}})
	out, err, _ := runStream(t, redactObl, strings.NewReader(body))
	if err != nil || strings.Contains(string(out), awsKey) || !strings.Contains(string(out), awsRedacted) || !strings.Contains(string(out), "overloaded_error") {
		t.Fatalf("err %v, client read %s", err, out)
	}
	id, name := "toolu_"+awsKey, "put_"+awsKey
	body = startEvents() + blockStart(0, map[string]any{"type": "tool_use", "id": id, "name": name, "input": map[string]any{"k": awsKey}}) + blockStop(0) + endEvents()
	out, err, _ = runStream(t, redactObl, strings.NewReader(body))
	if err != nil || !strings.Contains(string(out), `"id":"`+id+`"`) || !strings.Contains(string(out), `"name":"`+name+`"`) || strings.Count(string(out), awsRedacted) != 1 {
		t.Fatalf("err %v, client read %s", err, out)
	}
}

type failingReader struct{ r io.Reader }

func (f failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

// TestStreamScanOnlyEveryPath: scan-only, what was sent is scanned however
// the stream ends, and tool input, thinking and unknown deltas are
// scanned too.
func TestStreamScanOnlyEveryPath(t *testing.T) {
	secret := startEvents() + blockStart(0, map[string]any{"type": "text", "text": ""}) + textDelta(0, "the key is "+awsKey)
	check := func(t *testing.T, x protocol.Exchange) {
		t.Helper()
		rg := x.Audit()["response_guard"].(map[string]any)
		if rg["scanned"] != true || rg["findings"] != 1 || !slices.Equal(rg["rules"].([]string), []string{awsRule}) {
			t.Fatalf("audit response_guard %v", rg)
		}
	}
	t.Run("upstream error", func(t *testing.T) {
		out, err, x := runStream(t, nil, failingReader{strings.NewReader(secret)})
		if err == nil || !strings.Contains(string(out), awsKey) {
			t.Fatalf("err %v out %s", err, out)
		}
		check(t, x)
	})
	t.Run("client closed", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() { _, _ = io.WriteString(pw, secret) }()
		r := httptest.NewRequest("POST", "/v1/messages", strings.NewReader(streamReq))
		r.Header.Set("Content-Type", "application/json")
		x, err := New(Config{}).Parse(context.Background(), &protocol.Request{HTTP: r, Body: []byte(streamReq), Backend: "llm", Guard: testGuard(t)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := x.Forward(context.Background(), []protocol.Decision{{Allow: true}}); err != nil {
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
		if rg := x.Audit()["response_guard"].(map[string]any); rg["scanned"] != "partial" {
			t.Fatalf("audit before the end %v", rg)
		}
		resp.Body.Close()
		pw.Close()
		check(t, x)
	})
	for name, e := range map[string]string{
		"tool input":    blockDelta(0, map[string]any{"type": "input_json_delta", "partial_json": `{"k":"` + awsKey + `"}`}),
		"thinking":      blockDelta(0, map[string]any{"type": "thinking_delta", "thinking": awsKey}),
		"unknown delta": blockDelta(0, map[string]any{"type": "summary_delta", "summary": awsKey}),
		"unknown event": ev("note", map[string]any{"note": awsKey}),
	} {
		t.Run(name, func(t *testing.T) {
			body := startEvents() + blockStart(0, map[string]any{"type": "tool_use", "id": "t", "name": "f", "input": map[string]any{}}) + e + blockStop(0) + endEvents()
			out, err, x := runStream(t, nil, strings.NewReader(body))
			if err != nil || string(out) != body {
				t.Fatalf("err %v, stream changed: %s", err, out)
			}
			check(t, x)
		})
	}
}

// TestNonStreamRedactBlocks: non-streamed, every block's strings are
// redacted (tool_use input); signed thinking with a finding withholds the
// response.
func TestNonStreamRedactBlocks(t *testing.T) {
	const req = `{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`
	run := func(content string) ([]byte, error) {
		r := httptest.NewRequest("POST", "/v1/messages", strings.NewReader(req))
		r.Header.Set("Content-Type", "application/json")
		x, err := New(Config{}).Parse(context.Background(), &protocol.Request{HTTP: r, Body: []byte(req), Guard: testGuard(t)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := x.Forward(context.Background(), []protocol.Decision{{Allow: true, Obligations: redactObl}}); err != nil {
			t.Fatal(err)
		}
		body := `{"id":"m","type":"message","role":"assistant","model":"c","content":` + content + `,"stop_reason":"tool_use","usage":{"input_tokens":3,"output_tokens":4}}`
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body))}
		if err := x.Response(context.Background(), resp, nil); err != nil {
			return nil, err
		}
		return io.ReadAll(resp.Body)
	}
	got, err := run(`[{"type":"tool_use","id":"t","name":"put","input":{"a":{"b":["` + awsKey + `"]}}},{"type":"text","text":"x","citations":[{"type":"char_location","cited_text":"` + awsKey + `"}]}]`)
	if err != nil || strings.Contains(string(got), awsKey) || strings.Count(string(got), awsRedacted) != 2 {
		t.Fatalf("err %v, response %s", err, got)
	}
	var pe *protocol.Error
	if _, err := run(`[{"type":"thinking","thinking":"use ` + awsKey + `","signature":"c2ln"},{"type":"text","text":"x"}]`); !errors.As(err, &pe) || pe.Code != protocol.CodeGuardBlocked {
		t.Fatalf("signed thinking with a finding: %v", err)
	}
}
