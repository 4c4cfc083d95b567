package anthropic

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/wardenhq/warden/internal/guard/guardtest"
	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
	"github.com/wardenhq/warden/internal/protocol/llmtest"
	"github.com/wardenhq/warden/internal/protocol/openai"
	"github.com/wardenhq/warden/internal/sse"
)

const (
	awsKey      = guardtest.AWSKey
	awsRule     = guardtest.AWSRule
	awsRedacted = guardtest.AWSRedacted
)

// testGuard is the real scanner as protocols see it (default config).
func testGuard(tb testing.TB) protocol.Guard { return guardtest.Guard(tb) }

// scripted starts a real upstream on loopback that answers every request
// with the given SSE bytes, each piece written and flushed on its own.
func scripted(t *testing.T, events ...string) string {
	t.Helper()
	u, stop := llmtest.ScriptedSSE(events...)
	t.Cleanup(stop)
	return u
}

func ev(typ string, v map[string]any) string {
	v["type"] = typ
	b, err := jsonstrict.Marshal(v)
	if err != nil {
		panic(err)
	}
	return "event: " + typ + "\ndata: " + string(b) + "\n\n"
}

func textDelta(idx int, s string) string {
	return ev("content_block_delta", map[string]any{"index": idx, "delta": map[string]any{"type": "text_delta", "text": s}})
}

// messageStream is a Messages stream with one text block (index 0) made
// of deltas, then a tool_use block (index 1).
func messageStream(deltas ...string) []string {
	out := []string{
		ev("message_start", map[string]any{"message": map[string]any{"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
			"content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": map[string]any{"input_tokens": 3, "output_tokens": 1}}}),
		ev("content_block_start", map[string]any{"index": 0, "content_block": map[string]any{"type": "text", "text": ""}}),
		ev("ping", map[string]any{}),
	}
	for _, d := range deltas {
		out = append(out, textDelta(0, d))
	}
	return append(out,
		ev("content_block_stop", map[string]any{"index": 0}),
		ev("content_block_start", map[string]any{"index": 1, "content_block": map[string]any{"type": "tool_use", "id": "toolu_1", "name": "f", "input": map[string]any{}}}),
		ev("content_block_delta", map[string]any{"index": 1, "delta": map[string]any{"type": "input_json_delta", "partial_json": `{"a":1}`}}),
		ev("content_block_stop", map[string]any{"index": 1}),
		ev("message_delta", map[string]any{"delta": map[string]any{"stop_reason": "tool_use", "stop_sequence": nil}, "usage": map[string]any{"output_tokens": 9}}),
		ev("message_stop", map[string]any{}),
	)
}

func guarded(t *testing.T, obligations map[string]any, events ...string) *harness {
	t.Helper()
	h := newHarness(t, llmtest.Config{}, openai.Limits{}, nil)
	h.guard = testGuard(t)
	h.obligations = obligations
	if events != nil {
		h.upstream = scripted(t, events...)
	}
	return h
}

func rawPost(t *testing.T, h *harness, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", h.srv.URL+"/v1/messages", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return resp.StatusCode, b
}

// blockText is what a client reads: the text of each text block, and the
// event types in order. Every event must be valid JSON.
func blockText(t *testing.T, raw []byte) (map[int]string, []string) {
	t.Helper()
	text := map[int]string{}
	var types []string
	stopped := map[int]bool{}
	rd := sse.NewReader(strings.NewReader(string(raw)), sse.ReaderOptions{})
	for {
		e, err := rd.Next()
		if err == io.EOF {
			return text, types
		}
		if err != nil {
			t.Fatalf("client-side SSE parse: %v", err)
		}
		var v struct {
			Type  string `json:"type"`
			Index int    `json:"index"`
			Delta struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"delta"`
		}
		if err := json.Unmarshal([]byte(e.Data), &v); err != nil || v.Type != e.Type {
			t.Fatalf("event %q: %v", e.Data, err)
		}
		types = append(types, e.Type)
		if e.Type == "content_block_stop" {
			stopped[v.Index] = true
		}
		if v.Delta.Type == "text_delta" {
			if stopped[v.Index] {
				t.Fatalf("text_delta for block %d after its content_block_stop", v.Index)
			}
			text[v.Index] += v.Delta.Text
		}
	}
}

const streamReq = `{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}`

var redactObl = map[string]any{openai.ObligationRedact: true}

// TestStreamRedactSplitAnywhere cuts an AWS key between two text_deltas at
// every byte offset: the client never sees it, the held text arrives as a
// text_delta just before content_block_stop, the rest is untouched.
func TestStreamRedactSplitAnywhere(t *testing.T) {
	g := testGuard(t)
	for i := 0; i <= len(awsKey); i++ {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			deltas := []string{"Sure. ", "The key is " + awsKey[:i], awsKey[i:] + " for the bucket.", " Done."}
			h := guarded(t, redactObl, messageStream(deltas...)...)
			status, raw := rawPost(t, h, streamReq)
			if status != 200 || strings.Contains(string(raw), awsKey) {
				t.Fatalf("status %d, key reached the client: %s", status, raw)
			}
			text, types := blockText(t, raw)
			want, _, _ := g.Redact(context.Background(), protocol.GuardResponse, strings.Join(deltas, ""))
			if text[0] != want || !strings.Contains(text[0], awsRedacted) {
				t.Fatalf("client text %q, want %q", text[0], want)
			}
			stop := slices.Index(types, "content_block_stop")
			if stop < 1 || types[stop-1] != "content_block_delta" || types[len(types)-1] != "message_stop" {
				t.Fatalf("event order %v", types)
			}
			if !strings.Contains(string(raw), `"partial_json":"{\"a\":1}"`) {
				t.Fatalf("tool_use block changed: %s", raw)
			}
			rg, _ := h.Audit()["response_guard"].(map[string]any)
			if rg["scanned"] != true || rg["redacted"] != true || rg["findings"] != 1 || !slices.Equal(rg["rules"].([]string), []string{awsRule}) {
				t.Fatalf("audit response_guard %v", rg)
			}
		})
	}
}

// TestStreamScanOnly: a Guard without the redact obligation leaves the
// stream byte for byte as the upstream sent it, and counts what it saw.
func TestStreamScanOnly(t *testing.T) {
	evs := messageStream("The key is AKIAZ3MK", "QWERTY7N5X2P.", strings.Repeat(" clean", 200))
	h := guarded(t, nil, evs...)
	_, raw := rawPost(t, h, streamReq)
	if string(raw) != strings.Join(evs, "") {
		t.Fatalf("stream changed:\n got %q\nwant %q", raw, strings.Join(evs, ""))
	}
	rg, _ := h.Audit()["response_guard"].(map[string]any)
	if rg["scanned"] != true || rg["redacted"] != false || rg["findings"] != 1 {
		t.Fatalf("audit response_guard %v", rg)
	}
}

// TestStreamRedactBudgetCutoff: the budget runs out while the key is held:
// the held text goes out redacted, then Anthropic's error event.
func TestStreamRedactBudgetCutoff(t *testing.T) {
	deltas := []string{"The key is ", awsKey, "."}
	for range 40 {
		deltas = append(deltas, "more ")
	}
	h := guarded(t, redactObl, messageStream(deltas...)...)
	h.meter.Budget = 3 + 15 // input 3, then about 60 bytes of output
	_, raw := rawPost(t, h, streamReq)
	if strings.Contains(string(raw), awsKey) {
		t.Fatalf("key reached the client: %s", raw)
	}
	text, types := blockText(t, raw)
	if !strings.HasPrefix(text[0], "The key is "+awsRedacted+".more ") {
		t.Fatalf("client text %q", text[0])
	}
	if types[len(types)-1] != "error" || slices.Contains(types, "content_block_stop") || !strings.Contains(string(raw), `"code":"budget_exhausted"`) {
		t.Fatalf("event types %v", types)
	}
	if a := h.Audit(); a["cutoff_reason"] != protocol.CodeBudgetExhausted || h.meter.Total > 18 {
		t.Fatalf("audit %v charged %d", a, h.meter.Total)
	}
}

// TestNonStreamGuard: content[].text is redacted under the obligation,
// only inspected without it.
func TestNonStreamGuard(t *testing.T) {
	const upstream = `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"use ` + awsKey + ` now"},{"type":"tool_use","id":"t","name":"f","input":{}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":4}}`
	const req = `{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`
	for _, tc := range []struct {
		name     string
		obl      map[string]any
		redacted bool
	}{{"redact", redactObl, true}, {"scan only", nil, false}} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/messages", strings.NewReader(req))
			r.Header.Set("Content-Type", "application/json")
			x, err := New(Config{}).Parse(context.Background(), &protocol.Request{HTTP: r, Body: []byte(req), Guard: testGuard(t)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := x.Forward(context.Background(), []protocol.Decision{{Allow: true, Obligations: tc.obl}}); err != nil {
				t.Fatal(err)
			}
			resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(upstream))}
			if err := x.Response(context.Background(), resp, nil); err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			if tc.redacted != (!strings.Contains(string(got), awsKey) && strings.Contains(string(got), awsRedacted)) {
				t.Fatalf("response %s", got)
			}
			if !tc.redacted && string(got) != upstream {
				t.Fatalf("response changed: %s", got)
			}
			rg := x.Audit()["response_guard"].(map[string]any)
			if rg["redacted"] != tc.redacted || rg["findings"] != 1 {
				t.Fatalf("audit %v", rg)
			}
		})
	}
}

// TestRedactPrompt: under redact_prompt an AWS key anywhere in the prompt
// (system, text, tool_result, tool_use input, document) never reaches the
// upstream.
func TestRedactPrompt(t *testing.T) {
	body := `{"model":"claude-sonnet-4-5","max_tokens":64,"system":[{"type":"text","text":"key ` + awsKey + `"}],"messages":[` +
		`{"role":"user","content":"my key is ` + awsKey + `"},` +
		`{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"store","input":{"k":"` + awsKey + `"}}]},` +
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"stored ` + awsKey + `"}]},{"type":"document","source":{"type":"text","media_type":"text/plain","data":"doc ` + awsKey + `"}}]}]}`
	h := guarded(t, map[string]any{openai.ObligationRedactPrompt: []any{"secret"}})
	status, raw := rawPost(t, h, body)
	if status != 200 {
		t.Fatalf("status %d: %s", status, raw)
	}
	up := string(h.up.LastRequest().Body)
	if strings.Contains(up, awsKey) || strings.Count(up, awsRedacted) != 5 {
		t.Fatalf("upstream saw %s", up)
	}
	if pr := h.Audit()["prompt_redacted"]; !slices.Equal(pr.([]string), []string{awsRule}) {
		t.Fatalf("audit %v", pr)
	}
}

// TestGuardObligationsRefused: without a Guard, or with a malformed value,
// the obligations refuse the request in Anthropic's error format.
func TestGuardObligationsRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		guard bool
		obl   map[string]any
	}{
		{"redact without guard", false, redactObl},
		{"redact_prompt without guard", false, map[string]any{openai.ObligationRedactPrompt: []any{"secret"}}},
		{"redact_prompt empty", true, map[string]any{openai.ObligationRedactPrompt: []any{}}},
		{"redact_prompt unknown", true, map[string]any{openai.ObligationRedactPrompt: []any{"secrets"}}},
		{"redact false", true, map[string]any{openai.ObligationRedact: false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, llmtest.Config{}, openai.Limits{}, nil)
			if tc.guard {
				h.guard = testGuard(t)
			}
			h.obligations = tc.obl
			status, raw := rawPost(t, h, streamReq)
			if status != 403 || !strings.Contains(string(raw), `"code":"`+openai.CodeObligationRejected+`"`) || !strings.Contains(string(raw), `"type":"permission_error"`) {
				t.Fatalf("%d %s", status, raw)
			}
			if h.up.Requests() != 0 {
				t.Fatal("refused request reached the upstream")
			}
		})
	}
}

// TestRedactPromptEveryField: the whole request is redacted, not a list of
// fields: tool schemas, search results, document titles and context.
// Signed thinking blocks are never changed; one holding a finding refuses
// the request.
func TestRedactPromptEveryField(t *testing.T) {
	const k = awsKey
	msg := func(content string) string {
		return `{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":` + content + `}]}`
	}
	for _, tc := range []struct{ name, body string }{
		{"input_schema", `{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"f","input_schema":{"type":"object","properties":{"a":{"type":"string","description":"` + k + `"}}}}]}`},
		{"search_result", msg(`[{"type":"search_result","source":"https://x","title":"t","content":[{"type":"text","text":"` + k + `"}]},{"type":"text","text":"hi"}]`)},
		{"document title", msg(`[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"d"},"title":"` + k + `","context":"c"},{"type":"text","text":"hi"}]`)},
		{"document context", msg(`[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"d"},"title":"t","context":"` + k + `"},{"type":"text","text":"hi"}]`)},
		{"unsigned thinking", `{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"thinking","thinking":"` + k + `"}]},{"role":"user","content":"go"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := guarded(t, map[string]any{openai.ObligationRedactPrompt: []any{"secret"}})
			status, raw := rawPost(t, h, tc.body)
			if status != 200 {
				t.Fatalf("status %d: %s", status, raw)
			}
			up := string(h.up.LastRequest().Body)
			if strings.Contains(up, k) || !strings.Contains(up, awsRedacted) {
				t.Fatalf("upstream saw %s", up)
			}
		})
	}
	const signed = `{"type":"thinking","thinking":"let me think","signature":"c2lnbmF0dXJl"}`
	t.Run("signed thinking untouched", func(t *testing.T) {
		h := guarded(t, map[string]any{openai.ObligationRedactPrompt: []any{"secret"}})
		body := `{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"` + k + `"},{"role":"assistant","content":[` + signed + `]},{"role":"user","content":"go"}]}`
		if status, raw := rawPost(t, h, body); status != 200 {
			t.Fatalf("status %d: %s", status, raw)
		}
		if up := string(h.up.LastRequest().Body); strings.Contains(up, k) || !strings.Contains(up, `{"signature":"c2lnbmF0dXJl","thinking":"let me think","type":"thinking"}`) {
			t.Fatalf("upstream saw %s", up)
		}
	})
	for name, block := range map[string]string{
		"signed thinking with a finding": `{"type":"thinking","thinking":"the key is ` + k + `","signature":"c2ln"}`,
		"key in an object key":           `{"type":"tool_use","id":"t","name":"f","input":{"` + k + `":1}}`,
	} {
		t.Run(name, func(t *testing.T) {
			h := guarded(t, map[string]any{openai.ObligationRedactPrompt: []any{"secret"}})
			body := `{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[` + block + `]},{"role":"user","content":"go"}]}`
			status, raw := rawPost(t, h, body)
			if status != 403 || !strings.Contains(string(raw), protocol.CodeGuardBlocked) {
				t.Fatalf("status %d: %s", status, raw)
			}
			if h.up.Requests() != 0 {
				t.Fatal("refused request reached the upstream")
			}
		})
	}
}
