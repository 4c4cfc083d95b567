package openai

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
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
func scripted(t *testing.T, pieces ...string) string {
	t.Helper()
	u, stop := llmtest.ScriptedSSE(pieces...)
	t.Cleanup(stop)
	return u
}

// chunk is one canonical chat.completion.chunk event; field is "content",
// "refusal" or "" (an empty delta), finish "" for none.
func chunk(index int, field, text, finish string) string {
	delta := map[string]any{}
	if field != "" {
		delta[field] = text
	}
	var fr any
	if finish != "" {
		fr = finish
	}
	return event(map[string]any{"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "system_fingerprint": "fp",
		"choices": []any{map[string]any{"index": index, "delta": delta, "finish_reason": fr, "logprobs": nil}}})
}

// legacyChunk is one text_completion stream event.
func legacyChunk(text, finish string) string {
	var fr any
	if finish != "" {
		fr = finish
	}
	return event(map[string]any{"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "gpt-3.5-turbo-instruct",
		"choices": []any{map[string]any{"index": 0, "text": text, "finish_reason": fr, "logprobs": nil}}})
}

func event(v any) string {
	b, err := jsonstrict.Marshal(v)
	if err != nil {
		panic(err)
	}
	return "data: " + string(b) + "\n\n"
}

const done = "data: [DONE]\n\n"

// streamOf is a chat stream carrying deltas as content of choice 0.
func streamOf(field string, deltas ...string) []string {
	ev := []string{chunk(0, "content", "", "")}
	for _, d := range deltas {
		ev = append(ev, chunk(0, field, d, ""))
	}
	return append(ev, chunk(0, "", "", "stop"), done)
}

// post sends a request through the harness and returns the raw response.
func post(t *testing.T, h *harness, path, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(h.srv.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read: %v (%q)", err, b)
	}
	return resp.StatusCode, b
}

// streamed is what a client reads from an SSE body: per choice index and
// field the concatenated text, the events' data in order, and whether
// every event is valid JSON (or [DONE]).
type streamed struct {
	text   map[string]string
	data   []string
	errors []string
}

func readStream(t *testing.T, raw []byte) streamed {
	t.Helper()
	s := streamed{text: map[string]string{}}
	finished := map[int]bool{}
	rd := sse.NewReader(strings.NewReader(string(raw)), sse.ReaderOptions{})
	for {
		ev, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("client-side SSE parse: %v in %q", err, raw)
		}
		if !ev.HasData {
			continue
		}
		s.data = append(s.data, ev.Data)
		if ev.Data == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Index  int               `json:"index"`
				Delta  map[string]string `json:"delta"`
				Text   *string           `json:"text"`
				Finish *string           `json:"finish_reason"`
			} `json:"choices"`
			Error *struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(ev.Data), &c); err != nil {
			t.Fatalf("event is not valid JSON: %v: %q", err, ev.Data)
		}
		if c.Error != nil {
			s.errors = append(s.errors, c.Error.Code)
		}
		for _, ch := range c.Choices {
			if finished[ch.Index] && (len(ch.Delta) > 0 || ch.Text != nil && *ch.Text != "") {
				t.Fatalf("text for choice %d after its finish_reason: %q", ch.Index, ev.Data)
			}
			if ch.Finish != nil {
				finished[ch.Index] = true
			}
			for k, v := range ch.Delta {
				s.text[fmt.Sprintf("%d.%s", ch.Index, k)] += v
			}
			if ch.Text != nil {
				s.text[fmt.Sprintf("%d.text", ch.Index)] += *ch.Text
			}
		}
	}
	return s
}

const streamChat = `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`

func guarded(t *testing.T, obligations map[string]any, pieces ...string) *harness {
	t.Helper()
	h := newHarness(t, llmtest.Config{}, Limits{}, nil)
	h.guard = testGuard(t)
	h.obligations = obligations
	if pieces != nil {
		h.upstream = scripted(t, pieces...)
	}
	return h
}

var redactObl = map[string]any{ObligationRedact: true}

// streamChatN2 asks for two choices; guardedN's backend allows it.
const streamChatN2 = `{"model":"gpt-4o","stream":true,"n":2,"messages":[{"role":"user","content":"hi"}]}`

func guardedN(t *testing.T, obligations map[string]any, pieces ...string) *harness {
	t.Helper()
	h := newHarness(t, llmtest.Config{}, Limits{MaxN: 2}, nil)
	h.guard = testGuard(t)
	h.obligations = obligations
	h.upstream = scripted(t, pieces...)
	return h
}

// TestStreamRedactSplitAnywhere cuts an AWS key between two deltas at every
// byte offset (and the SSE bytes inside the key): the client never sees
// it, only the placeholder, and the text equals the whole text redacted.
func TestStreamRedactSplitAnywhere(t *testing.T) {
	g := testGuard(t)
	for _, field := range []string{"content", "refusal"} {
		for i := 0; i <= len(awsKey); i++ {
			t.Run(fmt.Sprintf("%s/%d", field, i), func(t *testing.T) {
				deltas := []string{"Sure. ", "The key is " + awsKey[:i], awsKey[i:] + " for the bucket.", " Done."}
				evs := streamOf(field, deltas...)
				// Cut the SSE bytes inside the key too.
				var pieces []string
				for _, e := range evs {
					if k := strings.Index(e, awsKey[:i]); i > 0 && k >= 0 {
						pieces = append(pieces, e[:k+i/2], e[k+i/2:])
						continue
					}
					pieces = append(pieces, e)
				}
				h := guarded(t, redactObl, pieces...)
				status, raw := post(t, h, "/v1/chat/completions", streamChat)
				if status != 200 {
					t.Fatalf("status %d: %s", status, raw)
				}
				if strings.Contains(string(raw), awsKey) {
					t.Fatalf("key reached the client: %s", raw)
				}
				s := readStream(t, raw)
				want, _, _ := g.Redact(context.Background(), protocol.GuardResponse, strings.Join(deltas, ""))
				if got := s.text["0."+field]; got != want || !strings.Contains(got, awsRedacted) {
					t.Fatalf("client text %q, want %q", got, want)
				}
				if s.data[len(s.data)-1] != "[DONE]" || len(s.errors) != 0 {
					t.Fatalf("stream end %q errors %v", s.data[len(s.data)-1], s.errors)
				}
				rg, _ := h.Audit()["response_guard"].(map[string]any)
				if rg["scanned"] != true || rg["redacted"] != true || !slices.Equal(rg["rules"].([]string), []string{awsRule}) || rg["findings"] != 1 {
					t.Fatalf("audit response_guard %v", rg)
				}
			})
		}
	}
}

func pemKey(t *testing.T) string {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// TestStreamRedactPEM: a private key streamed in small deltas, longer than
// many of them, is redacted whole.
func TestStreamRedactPEM(t *testing.T) {
	key := pemKey(t)
	text := "Here is the key you asked for:\n" + key + "Keep it safe."
	for _, size := range []int{3, 7, 16} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			var deltas []string
			for s := text; s != ""; {
				n := min(size, len(s))
				deltas = append(deltas, s[:n])
				s = s[n:]
			}
			h := guarded(t, redactObl, streamOf("content", deltas...)...)
			_, raw := post(t, h, "/v1/chat/completions", streamChat)
			got := readStream(t, raw).text["0.content"]
			body := strings.Split(key, "\n")[1]
			if strings.Contains(got, body[:16]) || strings.Contains(got, "BEGIN PRIVATE KEY") {
				t.Fatalf("key material reached the client: %q", got)
			}
			if !strings.HasPrefix(got, "Here is the key you asked for:\n[REDACTED:") || !strings.HasSuffix(got, "Keep it safe.") {
				t.Fatalf("client text %q", got)
			}
			if rg := h.Audit()["response_guard"].(map[string]any); rg["redacted"] != true {
				t.Fatalf("audit %v", rg)
			}
		})
	}
}

// TestStreamScanOnly: with a Guard but no redact obligation the stream is
// the upstream's, byte for byte, and the audit record counts what the
// output held.
func TestStreamScanOnly(t *testing.T) {
	for _, tc := range []struct {
		name     string
		deltas   []string
		findings int
		rules    []string
	}{
		{"clean", []string{"Hello", ", ", "world", strings.Repeat("lorem ipsum ", 100)}, 0, []string{}},
		{"secret", []string{"The key is AKIAZ3MK", "QWERTY7N5X2P ok"}, 1, []string{awsRule}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs := streamOf("content", tc.deltas...)
			h := guarded(t, nil, evs...)
			_, raw := post(t, h, "/v1/chat/completions", streamChat)
			if string(raw) != strings.Join(evs, "") {
				t.Fatalf("stream changed:\n got %q\nwant %q", raw, strings.Join(evs, ""))
			}
			a := h.Audit()
			rg, _ := a["response_guard"].(map[string]any)
			if rg["scanned"] != true || rg["redacted"] != false || rg["findings"] != tc.findings || !slices.Equal(rg["rules"].([]string), tc.rules) {
				t.Fatalf("audit response_guard %v", rg)
			}
			if _, ok := a["prompt_redacted"]; ok {
				t.Fatalf("prompt_redacted without the obligation: %v", a)
			}
		})
	}
	// Without a Guard nothing claims a scan.
	h := newHarness(t, llmtest.Config{Chunks: 2}, Limits{}, nil)
	h.upstream = scripted(t, streamOf("content", "a", "b")...)
	post(t, h, "/v1/chat/completions", streamChat)
	if rg, ok := h.Audit()["response_guard"]; ok {
		t.Fatalf("response_guard without a Guard: %v", rg)
	}
}

// TestStreamRedactBudgetCutoff: the budget runs out while the key is still
// held: the held text goes out redacted, then the budget error, no [DONE].
func TestStreamRedactBudgetCutoff(t *testing.T) {
	deltas := []string{"The key is ", awsKey, " for the bucket."}
	for range 40 {
		deltas = append(deltas, "more ")
	}
	h := guarded(t, redactObl, streamOf("content", deltas...)...)
	h.meter.Budget = 25 // prompt (1) + about 95 bytes of output
	_, raw := post(t, h, "/v1/chat/completions", streamChat)
	if strings.Contains(string(raw), awsKey) {
		t.Fatalf("key reached the client: %s", raw)
	}
	s := readStream(t, raw)
	if !strings.HasPrefix(s.text["0.content"], "The key is "+awsRedacted+" for the bucket.more more ") {
		t.Fatalf("client text %q", s.text["0.content"])
	}
	if len(s.errors) != 1 || s.errors[0] != protocol.CodeBudgetExhausted || slices.Contains(s.data, "[DONE]") {
		t.Fatalf("stream end %q", s.data[len(s.data)-2:])
	}
	if !strings.Contains(s.data[len(s.data)-1], protocol.CodeBudgetExhausted) {
		t.Fatalf("last event %q", s.data[len(s.data)-1])
	}
	a := h.Audit()
	if a["cutoff_reason"] != protocol.CodeBudgetExhausted || a["response_guard"].(map[string]any)["findings"] != 1 {
		t.Fatalf("audit %v", a)
	}
	if h.meter.Total > 25 {
		t.Fatalf("charged %d over the budget", h.meter.Total)
	}
}

// TestStreamRedactLegacyAndChoices: legacy completions (choices[].text) and
// two interleaved choices, each with its own guard; held text is flushed at
// [DONE] when no finish_reason came.
func TestStreamRedactLegacyAndChoices(t *testing.T) {
	t.Run("completions", func(t *testing.T) {
		h := guarded(t, redactObl, legacyChunk("key: "+awsKey[:7], ""), legacyChunk(awsKey[7:]+" end", ""), done)
		_, raw := post(t, h, "/v1/completions", `{"model":"gpt-3.5-turbo-instruct","prompt":"x","stream":true}`)
		s := readStream(t, raw)
		if got := s.text["0.text"]; got != "key: "+awsRedacted+" end" || strings.Contains(string(raw), awsKey) {
			t.Fatalf("client text %q", got)
		}
		if s.data[len(s.data)-1] != "[DONE]" {
			t.Fatalf("stream end %q", s.data)
		}
	})
	t.Run("choices", func(t *testing.T) {
		h := guardedN(t, redactObl,
			chunk(0, "content", "zero "+awsKey[:10], ""), chunk(1, "content", "one "+awsKey[:4], ""),
			chunk(0, "content", awsKey[10:], ""), chunk(1, "content", awsKey[4:]+"!", ""),
			chunk(0, "", "", "stop"), chunk(1, "", "", "length"), done)
		_, raw := post(t, h, "/v1/chat/completions", streamChatN2)
		s := readStream(t, raw)
		if s.text["0.content"] != "zero "+awsRedacted || s.text["1.content"] != "one "+awsRedacted+"!" || strings.Contains(string(raw), awsKey) {
			t.Fatalf("client text %v", s.text)
		}
		if h.Audit()["response_guard"].(map[string]any)["findings"] != 2 {
			t.Fatalf("audit %v", h.Audit())
		}
	})
}

// TestNonStreamGuard: a non-streamed completion is redacted under the
// obligation (logprobs dropped) and only inspected without it.
func TestNonStreamGuard(t *testing.T) {
	const upstream = `{"id":"c1","object":"chat.completion","model":"small","choices":[{"index":0,"message":{"role":"assistant","content":"use ` + awsKey + ` now","refusal":null},"logprobs":{"content":[{"token":"AKIA"}]},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`
	const chat = `{"model":"small","messages":[{"role":"user","content":"hi"}]}`
	g := testGuard(t)
	for _, tc := range []struct {
		name     string
		g        protocol.Guard
		obl      map[string]any
		redacted bool
	}{
		{"redact", g, redactObl, true},
		{"scan only", g, nil, false},
		{"no guard", nil, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, err := guardExchange(t, tc.g, "/v1/chat/completions", chat, tc.obl)
			if err != nil {
				t.Fatal(err)
			}
			resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(upstream))}
			if err := x.Response(context.Background(), resp, nil); err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			if tc.redacted {
				if strings.Contains(string(got), awsKey) || strings.Contains(string(got), "AKIA\"") || !strings.Contains(string(got), awsRedacted) {
					t.Fatalf("response not redacted: %s", got)
				}
				if resp.ContentLength != int64(len(got)) {
					t.Errorf("Content-Length %d for %d bytes", resp.ContentLength, len(got))
				}
			} else if string(got) != upstream {
				t.Fatalf("response changed: %s", got)
			}
			rg, ok := x.Audit()["response_guard"].(map[string]any)
			if tc.g == nil {
				if ok {
					t.Fatalf("response_guard without a Guard: %v", rg)
				}
				return
			}
			if rg["scanned"] != true || rg["redacted"] != tc.redacted || rg["findings"] != 1 || !slices.Equal(rg["rules"].([]string), []string{awsRule}) {
				t.Fatalf("audit response_guard %v", rg)
			}
		})
	}
}

// overBudget is a Guard whose scans never finish in budget (fail mode
// closed): it wraps the real one and refuses every Redact.
type overBudget struct{ protocol.Guard }

func (overBudget) Redact(context.Context, string, string, ...string) (string, []string, bool) {
	return "", nil, false
}

// TestGuardFailsClosed: a text that cannot be scanned is withheld: the
// response (502 guard_blocked), the prompt (403 guard_blocked).
func TestGuardFailsClosed(t *testing.T) {
	g := overBudget{testGuard(t)}
	x, err := guardExchange(t, g, "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, redactObl)
	if err != nil {
		t.Fatal(err)
	}
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(`{"choices":[{"index":0,"message":{"role":"assistant","content":"text"},"finish_reason":"stop"}]}`))}
	var pe *protocol.Error
	if err := x.Response(context.Background(), resp, nil); !errors.As(err, &pe) || pe.Code != protocol.CodeGuardBlocked {
		t.Fatalf("over-budget response: %v", err)
	}
	_, err = guardExchange(t, g, "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, map[string]any{ObligationRedactPrompt: []any{"secret"}})
	if !errors.As(err, &pe) || pe.Code != protocol.CodeGuardBlocked || pe.Status != 403 {
		t.Fatalf("over-budget prompt: %v", err)
	}
}

func guardExchange(t *testing.T, g protocol.Guard, path, body string, obl map[string]any) (protocol.Exchange, error) {
	t.Helper()
	r := httptest.NewRequest("POST", path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	x, err := New(Config{}).Parse(context.Background(), &protocol.Request{HTTP: r, Body: []byte(body), Backend: "llm", Guard: g})
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

// TestGuardObligationsRefused: where an obligation cannot be applied the
// request is refused, never forwarded as it is.
func TestGuardObligationsRefused(t *testing.T) {
	g := testGuard(t)
	const chat = `{"model":"small","messages":[{"role":"user","content":"hi"}]}`
	for _, tc := range []struct {
		name string
		g    protocol.Guard
		path string
		body string
		obl  map[string]any
	}{
		{"redact without guard", nil, "/v1/chat/completions", chat, redactObl},
		{"redact stream without guard", nil, "/v1/chat/completions", streamChat, redactObl},
		{"redact_prompt without guard", nil, "/v1/chat/completions", chat, map[string]any{ObligationRedactPrompt: []any{"secret"}}},
		{"redact not true", g, "/v1/chat/completions", chat, map[string]any{ObligationRedact: "yes"}},
		{"redact on responses without guard", nil, "/v1/responses", `{"model":"small","input":"x","stream":true}`, redactObl},
		{"redact_prompt string", g, "/v1/chat/completions", chat, map[string]any{ObligationRedactPrompt: "secret"}},
		{"redact_prompt true", g, "/v1/chat/completions", chat, map[string]any{ObligationRedactPrompt: true}},
		{"redact_prompt empty", g, "/v1/chat/completions", chat, map[string]any{ObligationRedactPrompt: []any{}}},
		{"redact_prompt unknown", g, "/v1/chat/completions", chat, map[string]any{ObligationRedactPrompt: []any{"secret", "prompt_injection"}}},
		{"redact_prompt not strings", g, "/v1/chat/completions", chat, map[string]any{ObligationRedactPrompt: []any{1}}},
		{"other obligation", g, "/v1/chat/completions", chat, map[string]any{"watermark": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := guardExchange(t, tc.g, tc.path, tc.body, tc.obl)
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code != CodeObligationRejected || pe.Status != 403 {
				t.Fatalf("want 403 %s, got %v", CodeObligationRejected, err)
			}
		})
	}
	// Responses output is redacted, streamed or not (TestResponsesRedact*).
	for _, body := range []string{`{"model":"small","input":"x"}`, `{"model":"small","input":"x","stream":true}`} {
		if _, err := guardExchange(t, g, "/v1/responses", body, redactObl); err != nil {
			t.Fatalf("responses with redact: %v", err)
		}
	}
	// Embeddings return no generated text: redact is a no-op there, with or
	// without a Guard.
	for _, gg := range []protocol.Guard{nil, g} {
		if _, err := guardExchange(t, gg, "/v1/embeddings", `{"model":"small","input":"x"}`, redactObl); err != nil {
			t.Fatalf("embeddings with redact: %v", err)
		}
	}
}

// TestRedactPrompt: under redact_prompt an AWS key in any prompt string
// never reaches the upstream; the audit names the rule.
func TestRedactPrompt(t *testing.T) {
	for _, tc := range []struct {
		name, path, body string
		cats             []any
	}{
		{"chat user", "/v1/chat/completions", `{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"my key is ` + awsKey + `, store it"}]}`, []any{"secret"}},
		{"chat parts and tool", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"k=` + awsKey + `"}]},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"k\":\"` + awsKey + `\"}"}}]},{"role":"tool","tool_call_id":"c","content":"stored ` + awsKey + `"}],"tools":[{"type":"function","function":{"name":"f","description":"uses ` + awsKey + `"}}]}`, []any{"secret", "pii"}},
		{"completions", "/v1/completions", `{"model":"m","prompt":["a","key ` + awsKey + `"]}`, []any{"secret"}},
		{"embeddings", "/v1/embeddings", `{"model":"m","input":"key ` + awsKey + `"}`, []any{"secret"}},
		{"responses", "/v1/responses", `{"model":"m","instructions":"never print ` + awsKey + `","input":[{"role":"user","content":[{"type":"input_text","text":"` + awsKey + `"}]},{"type":"function_call_output","call_id":"c","output":"` + awsKey + `"}]}`, []any{"secret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := guarded(t, map[string]any{ObligationRedactPrompt: tc.cats})
			status, raw := post(t, h, tc.path, tc.body)
			if status != 200 {
				t.Fatalf("status %d: %s", status, raw)
			}
			up := string(h.up.LastRequest().Body)
			if strings.Contains(up, awsKey) || strings.Contains(up, "AKIAZ3MK") || !strings.Contains(up, awsRedacted) {
				t.Fatalf("upstream saw %s", up)
			}
			if !json.Valid([]byte(up)) {
				t.Fatalf("forwarded body is not JSON: %s", up)
			}
			if pr := h.Audit()["prompt_redacted"]; !slices.Equal(pr.([]string), []string{awsRule}) {
				t.Fatalf("audit prompt_redacted %v", pr)
			}
		})
	}
	// Categories are honoured: redacting PII only leaves the key.
	h := guarded(t, map[string]any{ObligationRedactPrompt: []any{"pii"}})
	post(t, h, "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"key `+awsKey+`"}]}`)
	if up := string(h.up.LastRequest().Body); !strings.Contains(up, awsKey) {
		t.Fatalf("pii-only redaction changed a secret: %s", up)
	}
	if pr := h.Audit()["prompt_redacted"]; len(pr.([]string)) != 0 {
		t.Fatalf("audit prompt_redacted %v", pr)
	}
}

// TestResponsesScanOnly: Responses output is scanned for the audit record,
// streamed (output_text.delta) or not, and passes unchanged (redact is
// refused for Responses, see TestGuardObligationsRefused).
func TestResponsesScanOnly(t *testing.T) {
	reply := "The key is " + awsKey + ", keep it."
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprint("stream=", stream), func(t *testing.T) {
			h := newHarness(t, llmtest.Config{Reply: reply, Chunks: 7}, Limits{}, nil)
			h.guard = testGuard(t)
			_, raw := post(t, h, "/v1/responses", fmt.Sprintf(`{"model":"gpt-5","input":"hi","stream":%v}`, stream))
			if stream {
				var text strings.Builder
				for _, d := range readResponsesDeltas(t, raw) {
					text.WriteString(d)
				}
				if text.String() != reply {
					t.Fatalf("streamed text %q", text.String())
				}
			} else if !strings.Contains(string(raw), reply) {
				t.Fatalf("response %s", raw)
			}
			rg, _ := h.Audit()["response_guard"].(map[string]any)
			if rg["scanned"] != true || rg["redacted"] != false || rg["findings"] != 1 || !slices.Equal(rg["rules"].([]string), []string{awsRule}) {
				t.Fatalf("audit response_guard %v", rg)
			}
		})
	}
}

func readResponsesDeltas(t *testing.T, raw []byte) []string {
	t.Helper()
	var out []string
	rd := sse.NewReader(strings.NewReader(string(raw)), sse.ReaderOptions{})
	for {
		ev, err := rd.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == "response.output_text.delta" {
			var v struct{ Delta string }
			if err := json.Unmarshal([]byte(ev.Data), &v); err != nil {
				t.Fatal(err)
			}
			out = append(out, v.Delta)
		}
	}
}

// TestRedactPromptEveryField: under redact_prompt the whole request is
// redacted, not a list of fields: a key planted in each field a review
// found forwarded unchanged never reaches the upstream.
func TestRedactPromptEveryField(t *testing.T) {
	const k = awsKey
	for _, tc := range []struct {
		name, path, body string
	}{
		{"prediction", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}],"prediction":{"type":"content","content":"` + k + `"}}`},
		{"tool parameter description", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"string","description":"use ` + k + `"}}}}}]}`},
		{"response_format", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"s","description":"` + k + `","schema":{"type":"object"}}}}`},
		{"message name", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","name":"` + k + `","content":"hi"}]}`},
		{"tool message", "/v1/chat/completions", `{"model":"m","messages":[{"role":"tool","tool_call_id":"c","content":[{"type":"text","text":"` + k + `"}]}]}`},
		{"suffix", "/v1/completions", `{"model":"m","prompt":"a","suffix":"` + k + `"}`},
		{"responses tool parameters", "/v1/responses", `{"model":"m","input":"hi","tools":[{"type":"function","name":"f","parameters":{"type":"object","properties":{"a":{"type":"string","enum":["` + k + `"]}}}}]}`},
		{"responses reasoning summary", "/v1/responses", `{"model":"m","input":[{"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"` + k + `"}]},{"role":"user","content":"hi"}]}`},
		{"responses text format", "/v1/responses", `{"model":"m","input":"hi","text":{"format":{"type":"json_schema","name":"s","schema":{"description":"` + k + `"}}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := guarded(t, map[string]any{ObligationRedactPrompt: []any{"secret"}})
			status, raw := post(t, h, tc.path, tc.body)
			if status != 200 {
				t.Fatalf("status %d: %s", status, raw)
			}
			up := string(h.up.LastRequest().Body)
			if strings.Contains(up, k) || strings.Contains(up, "AKIAZ3MK") || !strings.Contains(up, awsRedacted) {
				t.Fatalf("upstream saw %s", up)
			}
			if pr := h.Audit()["prompt_redacted"]; !slices.Equal(pr.([]string), []string{awsRule}) {
				t.Fatalf("audit prompt_redacted %v", pr)
			}
		})
	}
}

// TestRedactPromptKeyRefused: a finding in an object key cannot be
// rewritten: the request is refused, never forwarded.
func TestRedactPromptKeyRefused(t *testing.T) {
	h := guarded(t, map[string]any{ObligationRedactPrompt: []any{"secret"}})
	status, raw := post(t, h, "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"`+awsKey+`":{"type":"string"}}}}}]}`)
	if status != 403 || !strings.Contains(string(raw), protocol.CodeGuardBlocked) || !strings.Contains(string(raw), "object key") {
		t.Fatalf("status %d: %s", status, raw)
	}
	if h.up.Requests() != 0 {
		t.Fatal("refused request reached the upstream")
	}
}
