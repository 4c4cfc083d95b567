package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"github.com/wardenhq/warden/internal/protocol"
	"github.com/wardenhq/warden/internal/sse"
)

const streamResponses = `{"model":"gpt-5","input":"hi","stream":true}`

// respStream is a scripted Responses stream: a reasoning item whose summary
// streams summary, a message whose output_text streams text (with
// logprobs), a function call whose arguments stream args, each delta list
// as given, with every "*.done", part, item and response.completed event
// repeating the whole texts, numbered from 0.
func respStream(summary, text, args []string) []string {
	var evs []string
	seq := 0
	add := func(typ string, m map[string]any) {
		m["type"], m["sequence_number"] = typ, seq
		seq++
		b, _ := json.Marshal(m)
		evs = append(evs, "event: "+typ+"\ndata: "+string(b)+"\n\n")
	}
	resp := func(status string, output []any) map[string]any {
		r := map[string]any{"id": "resp_1", "object": "response", "created_at": 1, "status": status, "model": "gpt-5",
			"instructions": nil, "output": output, "tools": []any{}, "parallel_tool_calls": true, "tool_choice": "auto", "usage": nil}
		if status == "completed" {
			r["usage"] = map[string]any{"input_tokens": 5, "input_tokens_details": map[string]any{"cached_tokens": 0},
				"output_tokens": 9, "output_tokens_details": map[string]any{"reasoning_tokens": 2}, "total_tokens": 14}
		}
		return r
	}
	all := func(ds []string) string { return strings.Join(ds, "") }
	reasoning := func(s string) map[string]any {
		sum := []any{}
		if s != "" {
			sum = []any{map[string]any{"type": "summary_text", "text": s}}
		}
		return map[string]any{"id": "rs_1", "type": "reasoning", "summary": sum}
	}
	part := func(s string) map[string]any {
		return map[string]any{"type": "output_text", "text": s, "annotations": []any{}, "logprobs": []any{}}
	}
	message := func(s string, parts bool) map[string]any {
		c := []any{}
		if parts {
			c = []any{part(s)}
		}
		return map[string]any{"id": "msg_1", "type": "message", "role": "assistant", "status": "completed", "content": c}
	}
	call := func(s string) map[string]any {
		return map[string]any{"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "put", "arguments": s, "status": "completed"}
	}
	add("response.created", map[string]any{"response": resp("in_progress", []any{})})
	add("response.in_progress", map[string]any{"response": resp("in_progress", []any{})})

	add("response.output_item.added", map[string]any{"output_index": 0, "item": reasoning("")})
	add("response.reasoning_summary_part.added", map[string]any{"item_id": "rs_1", "output_index": 0, "summary_index": 0, "part": map[string]any{"type": "summary_text", "text": ""}})
	for _, d := range summary {
		add("response.reasoning_summary_text.delta", map[string]any{"item_id": "rs_1", "output_index": 0, "summary_index": 0, "delta": d, "obfuscation": "xyz"})
	}
	add("response.reasoning_summary_text.done", map[string]any{"item_id": "rs_1", "output_index": 0, "summary_index": 0, "text": all(summary)})
	add("response.reasoning_summary_part.done", map[string]any{"item_id": "rs_1", "output_index": 0, "summary_index": 0, "part": map[string]any{"type": "summary_text", "text": all(summary)}})
	add("response.output_item.done", map[string]any{"output_index": 0, "item": reasoning(all(summary))})

	add("response.output_item.added", map[string]any{"output_index": 1, "item": message("", false)})
	add("response.content_part.added", map[string]any{"item_id": "msg_1", "output_index": 1, "content_index": 0, "part": part("")})
	for _, d := range text {
		add("response.output_text.delta", map[string]any{"item_id": "msg_1", "output_index": 1, "content_index": 0, "delta": d,
			"logprobs": []any{map[string]any{"token": d, "logprob": -0.1, "top_logprobs": []any{}}}})
	}
	add("response.output_text.done", map[string]any{"item_id": "msg_1", "output_index": 1, "content_index": 0, "text": all(text), "logprobs": []any{}})
	add("response.content_part.done", map[string]any{"item_id": "msg_1", "output_index": 1, "content_index": 0, "part": part(all(text))})
	add("response.output_item.done", map[string]any{"output_index": 1, "item": message(all(text), true)})

	add("response.output_item.added", map[string]any{"output_index": 2, "item": call("")})
	for _, d := range args {
		add("response.function_call_arguments.delta", map[string]any{"item_id": "fc_1", "output_index": 2, "delta": d})
	}
	add("response.function_call_arguments.done", map[string]any{"item_id": "fc_1", "output_index": 2, "arguments": all(args)})
	add("response.output_item.done", map[string]any{"output_index": 2, "item": call(all(args))})

	add("response.completed", map[string]any{"response": resp("completed", []any{reasoning(all(summary)), message(all(text), true), call(all(args))})})
	return evs
}

// respRead is what a client reads from a Responses stream: per delta type
// the assembled text, the events' data, and the sequence numbers.
type respRead struct {
	text map[string]string
	data []string
	seqs []int64
	typs []string
}

func readResponses(t *testing.T, raw []byte) respRead {
	t.Helper()
	r := respRead{text: map[string]string{}}
	rd := sse.NewReader(strings.NewReader(string(raw)), sse.ReaderOptions{})
	for {
		ev, err := rd.Next()
		if err == io.EOF {
			return r
		}
		if err != nil {
			t.Fatalf("client-side SSE parse: %v in %q", err, raw)
		}
		var e struct {
			Type  string  `json:"type"`
			Seq   int64   `json:"sequence_number"`
			Delta *string `json:"delta"`
		}
		if err := json.Unmarshal([]byte(ev.Data), &e); err != nil {
			t.Fatalf("event is not valid JSON: %v: %q", err, ev.Data)
		}
		if ev.Type != e.Type {
			t.Fatalf("event name %q, type %q", ev.Type, e.Type)
		}
		r.data, r.seqs, r.typs = append(r.data, ev.Data), append(r.seqs, e.Seq), append(r.typs, e.Type)
		if e.Delta != nil {
			r.text[e.Type] += *e.Delta
		}
	}
}

// TestResponsesStreamRedactSplitAnywhere cuts an AWS key between two
// deltas at every byte offset, in output text, function call arguments and
// reasoning summaries: the client never sees it, the text it assembles from
// the deltas equals the whole text redacted, the events repeating whole
// texts are redacted, logprobs are emptied, and sequence numbers increase.
func TestResponsesStreamRedactSplitAnywhere(t *testing.T) {
	g := testGuard(t)
	ctx := context.Background()
	for i := 0; i <= len(awsKey); i++ {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			text := []string{"Sure. ", "The key is " + awsKey[:i], awsKey[i:] + " for the bucket.", " Done."}
			args := []string{`{"key":"` + awsKey[:i], awsKey[i:] + `"}`}
			summary := []string{"Found " + awsKey[:i], awsKey[i:]}
			h := guarded(t, redactObl, respStream(summary, text, args)...)
			status, raw := post(t, h, "/v1/responses", streamResponses)
			if status != 200 {
				t.Fatalf("status %d: %s", status, raw)
			}
			if strings.Contains(string(raw), awsKey) {
				t.Fatalf("key reached the client: %s", raw)
			}
			r := readResponses(t, raw)
			for typ, ds := range map[string][]string{"response.output_text.delta": text, "response.function_call_arguments.delta": args, "response.reasoning_summary_text.delta": summary} {
				want, _, _ := g.Redact(ctx, protocol.GuardResponse, strings.Join(ds, ""))
				if got := r.text[typ]; got != want || !strings.Contains(got, awsRedacted) {
					t.Fatalf("%s: client text %q, want %q", typ, got, want)
				}
				done := strings.TrimSuffix(typ, ".delta") + ".done"
				j := slices.Index(r.typs, done)
				if j < 0 || !strings.Contains(r.data[j], awsRedacted) {
					t.Fatalf("%s: %v", done, r.data)
				}
				// Every delta of the text comes before its end.
				if k := slices.Index(r.typs[j:], typ); k >= 0 {
					t.Fatalf("%s after %s", typ, done)
				}
			}
			last := r.data[len(r.data)-1]
			if r.typs[len(r.typs)-1] != "response.completed" || strings.Count(last, awsRedacted) != 3 {
				t.Fatalf("last event %s", last)
			}
			if strings.Contains(string(raw), `"token"`) || strings.Contains(string(raw), "obfuscation") {
				t.Fatalf("logprobs or obfuscation passed: %s", raw)
			}
			for k := 1; k < len(r.seqs); k++ {
				if r.seqs[k] != r.seqs[k-1]+1 {
					t.Fatalf("sequence numbers %v", r.seqs)
				}
			}
			rg, _ := h.Audit()["response_guard"].(map[string]any)
			if rg["scanned"] != true || rg["redacted"] != true || !slices.Equal(rg["rules"].([]string), []string{awsRule}) || rg["findings"] != 3 {
				t.Fatalf("audit response_guard %v", rg)
			}
		})
	}
}

// TestResponsesStreamRedactSDK: the official SDK reads a redacted
// Responses stream without error, and its accumulator's output text (from
// the deltas and from the whole texts) holds no key.
func TestResponsesStreamRedactSDK(t *testing.T) {
	g := testGuard(t)
	text := []string{"The key is AKIAZ3MK", "QWERTY7N5X2P", ", keep it."}
	h := guarded(t, redactObl, respStream([]string{"ok"}, text, []string{`{"k":"` + awsKey[:3], awsKey[3:] + `"}`})...)
	c := client(h)
	st := c.Responses.NewStreaming(context.Background(), responses.ResponseNewParams{Model: "gpt-5",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}})
	var acc responses.ResponseAccumulator
	var deltas strings.Builder
	var args string
	for st.Next() {
		ev := st.Current()
		if ev.Type == "response.output_text.delta" {
			deltas.WriteString(ev.Delta)
		}
		if ev.Type == "response.function_call_arguments.done" {
			args = ev.Arguments
		}
		var u responses.ResponsesServerEventUnion
		if err := json.Unmarshal([]byte(ev.RawJSON()), &u); err != nil {
			t.Fatal(err)
		}
		if err := acc.AddEvent(u); err != nil {
			t.Fatalf("accumulator: %v on %s", err, ev.RawJSON())
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	want, _, _ := g.Redact(context.Background(), protocol.GuardResponse, strings.Join(text, ""))
	snap := acc.Snapshot()
	if deltas.String() != want || snap.OutputText() != want || snap.TerminalEvent != "response.completed" {
		t.Fatalf("deltas %q, accumulated %q (%s), want %q", deltas.String(), snap.OutputText(), snap.TerminalEvent, want)
	}
	final, err := acc.ReconstructedResponse()
	if err != nil {
		t.Fatal(err)
	}
	if out := final.OutputText(); out != want {
		t.Fatalf("final output text %q", out)
	}
	if strings.Contains(args, awsKey) || !strings.Contains(args, awsRedacted) || strings.Contains(final.RawJSON(), awsKey) {
		t.Fatalf("arguments %q, final %s", args, final.RawJSON())
	}
}

// TestResponsesRedactFailsClosed: under redact, Responses events whose text
// Warden cannot place cut the stream as malformed before any of it goes out.
func TestResponsesRedactFailsClosed(t *testing.T) {
	ev := func(typ string, m map[string]any) string {
		m["type"], m["sequence_number"] = typ, 7
		b, _ := json.Marshal(m)
		return "event: " + typ + "\ndata: " + string(b) + "\n\n"
	}
	for _, tc := range []struct{ name, event string }{
		{"unknown delta", ev("response.poem.delta", map[string]any{"item_id": "x", "output_index": 0, "delta": awsKey})},
		{"unknown event with text", ev("response.image_generation_call.partial_image", map[string]any{"item_id": "x", "output_index": 0, "partial_image_b64": awsKey})},
		{"audio", ev("response.audio.delta", map[string]any{"delta": awsKey})},
		{"delta not a string", ev("response.output_text.delta", map[string]any{"item_id": "m", "output_index": 0, "content_index": 0, "delta": []any{awsKey}})},
		{"extra text field", ev("response.output_text.delta", map[string]any{"item_id": "m", "output_index": 0, "content_index": 0, "delta": "x", "note": awsKey})},
		{"negative index", ev("response.output_text.delta", map[string]any{"item_id": "m", "output_index": -1, "content_index": 0, "delta": awsKey})},
		{"event name differs", "event: response.output_text.delta\ndata: {\"type\":\"response.in_progress\",\"delta\":\"" + awsKey + "\"}\n\n"},
		{"key in an object key", ev("response.output_item.done", map[string]any{"output_index": 0, "item": map[string]any{"type": "message", awsKey: 1}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := ev("response.output_text.delta", map[string]any{"item_id": "m", "output_index": 0, "content_index": 0, "delta": "ok "})
			h := guarded(t, redactObl, first, tc.event, ev("response.completed", map[string]any{"response": map[string]any{"id": "r", "status": "completed"}}))
			_, raw := post(t, h, "/v1/responses", streamResponses)
			if strings.Contains(string(raw), awsKey) || !strings.Contains(string(raw), CodeUpstreamMalformed) || strings.Contains(string(raw), "response.completed") {
				t.Fatalf("client read %s", raw)
			}
			if a := h.Audit(); a["cutoff_reason"] != CodeUpstreamMalformed {
				t.Fatalf("audit %v", a)
			}
		})
	}
	// Tool progress events carry no text: they pass.
	h := guarded(t, redactObl, ev("response.web_search_call.searching", map[string]any{"item_id": "ws_1", "output_index": 0}),
		ev("response.completed", map[string]any{"response": map[string]any{"id": "r", "status": "completed", "output": []any{}}}))
	if _, raw := post(t, h, "/v1/responses", streamResponses); !strings.Contains(string(raw), "response.completed") {
		t.Fatalf("client read %s", raw)
	}
}

// TestResponsesRedactNonStream: a non-streamed Responses response is
// redacted in every output string and in output_text; logprobs are
// emptied; a key in an object key withholds it.
func TestResponsesRedactNonStream(t *testing.T) {
	run := func(t *testing.T, body string) ([]byte, error, protocol.Exchange) {
		x, err := guardExchange(t, testGuard(t), "/v1/responses", `{"model":"gpt-5","input":"hi"}`, redactObl)
		if err != nil {
			t.Fatal(err)
		}
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body))}
		if err := x.Response(context.Background(), resp, nil); err != nil {
			return nil, err, x
		}
		got, _ := io.ReadAll(resp.Body)
		return got, nil, x
	}
	const k = awsKey
	body := `{"id":"resp_1","object":"response","status":"completed","model":"gpt-5","instructions":"be brief","output":[` +
		`{"id":"rs_1","type":"reasoning","summary":[{"type":"summary_text","text":"saw ` + k + `"}]},` +
		`{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"output_text","text":"key ` + k + `","annotations":[{"type":"url_citation","url":"https://x/` + k + `","title":"t"}],"logprobs":[{"token":"AKIA","logprob":-1}]},{"type":"refusal","refusal":"no ` + k + `"}]},` +
		`{"id":"fc_1","type":"function_call","call_id":"c","name":"put","arguments":"{\"k\":\"` + k + `\"}"},` +
		`{"id":"ct_1","type":"custom_tool_call","call_id":"c2","name":"sh","input":"echo ` + k + `"}],` +
		`"output_text":"key ` + k + `","usage":{"input_tokens":3,"output_tokens":9,"total_tokens":12}}`
	got, err, x := run(t, body)
	if err != nil || strings.Contains(string(got), k) || strings.Contains(string(got), `"token"`) || strings.Count(string(got), awsRedacted) != 7 || !json.Valid(got) {
		t.Fatalf("err %v, response %s", err, got)
	}
	if rg := responseGuard(t, x); rg["findings"] != 6 || rg["redacted"] != true {
		t.Fatalf("audit %v", rg)
	}
	var pe *protocol.Error
	if _, err, _ := run(t, `{"id":"r","status":"completed","output":[{"type":"message","content":[],"metadata":{"`+k+`":1}}]}`); !errors.As(err, &pe) || pe.Code != protocol.CodeGuardBlocked {
		t.Fatalf("key in an object key: want guard_blocked, got %v", err)
	}
}

// TestResponsesRedactBudgetCut: a budget cut-off mid-text sends what the
// StreamGuard held (redacted) before the error event, numbered in order.
func TestResponsesRedactBudgetCut(t *testing.T) {
	text := []string{"The key is " + awsKey[:9], awsKey[9:] + " and more text to spend the budget on, ", strings.Repeat("words ", 40)}
	h := guarded(t, redactObl, respStream([]string{"ok"}, text, []string{"{}"})...)
	h.meter.Budget = 30
	_, raw := post(t, h, "/v1/responses", streamResponses)
	r := readResponses(t, raw)
	if strings.Contains(string(raw), awsKey) || r.typs[len(r.typs)-1] != "error" || !strings.Contains(r.data[len(r.data)-1], protocol.CodeBudgetExhausted) {
		t.Fatalf("client read %s", raw)
	}
	if slices.Contains(r.typs, "response.output_text.done") || !strings.Contains(r.text["response.output_text.delta"], "The key is "+awsRedacted) {
		t.Fatalf("held text not sent: %q", r.text["response.output_text.delta"])
	}
	for k := 1; k < len(r.seqs); k++ {
		if r.seqs[k] != r.seqs[k-1]+1 {
			t.Fatalf("sequence numbers %v", r.seqs)
		}
	}
}

// TestResponsesScanOnlyWholeEvents: scan-only, the events carrying whole
// values (items, parts, "*.done", response.completed) are scanned too: a
// key only in them is found, counted once; an unknown event with text
// makes the audit "partial".
func TestResponsesScanOnlyWholeEvents(t *testing.T) {
	ev := func(typ string, seq int, m map[string]any) string {
		m["type"], m["sequence_number"] = typ, seq
		b, _ := json.Marshal(m)
		return "event: " + typ + "\ndata: " + string(b) + "\n\n"
	}
	call := map[string]any{"id": "fc_1", "type": "function_call", "call_id": "c", "name": "put", "arguments": `{"k":"` + awsKey + `"}`, "status": "completed"}
	evs := []string{
		ev("response.output_text.delta", 0, map[string]any{"item_id": "m", "output_index": 0, "content_index": 0, "delta": "harmless"}),
		ev("response.output_item.done", 1, map[string]any{"output_index": 1, "item": call}),
		ev("response.completed", 2, map[string]any{"response": map[string]any{"id": "r", "status": "completed", "output": []any{call}}}),
	}
	h := guarded(t, nil, evs...)
	if _, raw := post(t, h, "/v1/responses", streamResponses); string(raw) != strings.Join(evs, "") {
		t.Fatalf("stream changed: %s", raw)
	}
	rg, _ := h.Audit()["response_guard"].(map[string]any)
	if rg["scanned"] != true || rg["findings"] != 1 || !slices.Equal(rg["rules"].([]string), []string{awsRule}) {
		t.Fatalf("audit %v", rg)
	}
	h = guarded(t, nil, evs[0], ev("response.poem.added", 1, map[string]any{"output_index": 0, "poem": "roses"}), evs[2])
	post(t, h, "/v1/responses", streamResponses)
	if rg, _ := h.Audit()["response_guard"].(map[string]any); rg["scanned"] != "partial" {
		t.Fatalf("audit %v", rg)
	}
}

// TestResponsesRedactKeepsIDs: under redact, the whole-value events are
// redacted in their text, never in their envelope or IDs.
func TestResponsesRedactKeepsIDs(t *testing.T) {
	ev := func(typ string, seq int, m map[string]any) string {
		m["type"], m["sequence_number"] = typ, seq
		b, _ := json.Marshal(m)
		return "event: " + typ + "\ndata: " + string(b) + "\n\n"
	}
	id := "fc-" + awsKey
	call := map[string]any{"id": id, "type": "function_call", "call_id": "c", "name": "put", "arguments": `{"k":"` + awsKey + `"}`, "status": "completed"}
	h := guarded(t, redactObl,
		ev("response.output_item.done", 0, map[string]any{"output_index": 0, "item": call}),
		ev("response.function_call_arguments.done", 1, map[string]any{"item_id": id, "output_index": 0, "arguments": `{"k":"` + awsKey + `"}`}),
		ev("response.completed", 2, map[string]any{"response": map[string]any{"id": "r", "status": "completed", "output": []any{call}}}))
	_, raw := post(t, h, "/v1/responses", streamResponses)
	if strings.Count(string(raw), `"`+id+`"`) != 3 || strings.Count(string(raw), awsRedacted) != 3 {
		t.Fatalf("client read %s", raw)
	}
}

// TestRedactResponseUnknownMembers: a non-streamed Responses body under
// redact has every member but the identifiers redacted, so a member this
// version does not know cannot carry a secret past the obligation.
func TestRedactResponseUnknownMembers(t *testing.T) {
	o := &OutputGuard{G: testGuard(t), Redact: true}
	root := map[string]any{
		"id": "resp_1", "object": "response", "model": "gpt-4o", "status": "completed",
		"output":       []any{map[string]any{"type": "message", "id": "msg_1", "content": []any{map[string]any{"type": "output_text", "text": "fine"}}}},
		"summary_next": "the key is " + awsKey,
	}
	changed, err := o.redactResponse(context.Background(), root)
	if err != nil || !changed {
		t.Fatalf("changed %v, err %v", changed, err)
	}
	if s, _ := root["summary_next"].(string); strings.Contains(s, awsKey) || !strings.Contains(s, awsRedacted) {
		t.Errorf("unknown member = %q", s)
	}
	if root["id"] != "resp_1" || root["model"] != "gpt-4o" {
		t.Errorf("identifiers rewritten: %v", root)
	}
}
