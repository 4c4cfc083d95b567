package openai

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/sse"
)

// The redact obligation on the Responses API (POST /v1/responses).
//
// A Responses stream carries each generated text twice or more: piecewise
// in "*.delta" events, then whole in the matching "*.done" event, in
// response.content_part.done, response.output_item.done and the response
// object of response.completed. Deltas go through one StreamGuard per text
// (output_index, content or summary index, event type), which holds back
// its look-behind window; the complete texts are redacted at once with
// Guard.Redact. What a StreamGuard still holds goes out as one more delta
// event of the same type just before the event that ends its text, and the
// events after it are renumbered so sequence_number keeps increasing.
// See https://platform.openai.com/docs/api-reference/responses-streaming.

// respDeltas are the Responses events whose "delta" is generated text.
var respDeltas = []string{
	"response.output_text.delta",
	"response.refusal.delta",
	"response.function_call_arguments.delta",
	"response.custom_tool_call_input.delta",
	"response.mcp_call_arguments.delta",
	"response.code_interpreter_call_code.delta",
	"response.reasoning_summary_text.delta",
	"response.reasoning_text.delta",
	"response.audio.transcript.delta",
}

// respPartDeltas are the delta kinds that fill a content part: their text
// ends at response.content_part.done.
var respPartDeltas = []string{"response.output_text.delta", "response.refusal.delta", "response.reasoning_text.delta"}

// respWhole are the events that carry complete values (items, parts, whole
// texts, annotations, errors): every string in them is redacted at once.
// The "*.done" event of each delta kind is one too.
var respWhole = []string{
	"response.output_item.added", "response.output_item.done",
	"response.content_part.added", "response.content_part.done",
	"response.reasoning_summary_part.added", "response.reasoning_summary_part.done",
	"response.output_text.annotation.added",
	"error",
}

// respLifecycle are the events carrying the response object; the last
// three end the stream.
var respLifecycle = []string{"response.created", "response.in_progress", "response.queued", "response.completed", "response.incomplete", "response.failed"}

// respEnvelope are the fields of a Responses event that carry no generated
// text: an event of a type not listed above passes under redact only if
// its other fields hold no string.
var respEnvelope = []string{"type", "item_id", "output_index", "content_index", "summary_index", "annotation_index", "sequence_number", "obfuscation"}

// respIDs are the fields of the whole values in a Responses stream that
// are never rewritten (redacting an ID would break what refers to it).
var respIDs = []string{"type", "item_id", "id", "sequence_number", "output_index", "content_index"}

// responseKeep are the members of a response object that are never
// rewritten: identifiers and state. Every other member is redacted (or,
// scan-only, scanned): the generated ones (output, output_text, error,
// incomplete_details) and, failing closed, any member this version does not
// know; redacting what merely echoes the request (instructions, tools,
// metadata) is harmless.
var responseKeep = []string{"id", "object", "model", "status", "created_at", "completed_at", "previous_response_id"}

// responseMembers lists the members of r to redact or scan.
func responseMembers(r map[string]any) []string {
	var out []string
	for f, v := range r {
		if v != nil && !slices.Contains(responseKeep, f) {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

// maxOpenTexts bounds the texts a Responses stream may have open at once
// (deltas seen, end not yet seen) under the redact obligation.
const maxOpenTexts = 64

// respIndex reads an optional index of a Responses event: -1 when absent,
// an error when not a non-negative integer.
func respIndex(obj map[string]any, key string) (int64, error) {
	n, ok, err := jsonstrict.GetInt(obj, key)
	switch {
	case !ok:
		return -1, nil
	case err != nil || n < 0:
		return 0, errMalformed
	}
	return n, nil
}

// respKey names the text a Responses event belongs to: its output_index
// and its content_index (or summary_index, for reasoning summaries).
func respKey(obj map[string]any, typ string) (textKey, error) {
	oi, err := respIndex(obj, "output_index")
	if err != nil {
		return textKey{}, err
	}
	ci, err := respIndex(obj, "content_index")
	if err != nil {
		return textKey{}, err
	}
	if ci < 0 {
		if ci, err = respIndex(obj, "summary_index"); err != nil {
			return textKey{}, err
		}
	}
	return textKey{a: oi, b: ci, field: typ}, nil
}

// redactResponsesEvent applies the redact obligation to one parsed
// Responses event (metered already); n is its upstream sequence_number
// when hasSeq. Text Warden cannot place cuts the stream (errMalformed).
func (h *streamHook) redactResponsesEvent(dst []byte, ev sse.Event, obj map[string]any, typ string, n int64, hasSeq bool) ([]byte, error) {
	x := h.x
	if ev.Type != "" && ev.Type != typ {
		return dst, errMalformed // a client may dispatch on either name
	}
	k, err := respKey(obj, typ)
	if err != nil {
		return dst, err
	}
	changed := dropLogprobs(obj)
	// others reports whether fields outside allowed carry text.
	others := func(allowed ...string) bool {
		for f, v := range obj {
			if !slices.Contains(respEnvelope, f) && !slices.Contains(allowed, f) && HasText(v) {
				return true
			}
		}
		return false
	}
	// whole redacts every string of v, a repeat of streamed text, but
	// its envelope and IDs.
	whole := func(v any) (any, error) {
		out, c, err := x.out.redactRepeat(x.ctx, v, respIDs)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", errMalformed, typ, err)
		}
		changed = changed || c
		return out, nil
	}
	switch {
	case slices.Contains(respDeltas, typ):
		d, ok := obj["delta"].(string)
		if !ok || others("delta", "logprobs") {
			return dst, errMalformed
		}
		st := h.texts[k]
		if st == nil {
			if len(h.keys) >= maxOpenTexts {
				return dst, errMalformed
			}
			st = h.open(k)
		}
		h.remember(k, obj)
		if out := st.Write(d); out != d {
			obj["delta"] = out
			changed = true
		}
		if _, ok := obj["obfuscation"]; ok {
			delete(obj, "obfuscation") // pads the length of a delta that changed
			changed = true
		}
	case slices.Contains(respLifecycle, typ):
		if others("response") {
			return dst, errMalformed
		}
		if h.done {
			dst = h.flushTexts(dst, func(textKey) bool { return true }, true)
		}
		if r, ok := obj["response"].(map[string]any); ok {
			for _, f := range responseMembers(r) {
				if r[f], err = whole(r[f]); err != nil {
					return dst, err
				}
			}
		} else if HasText(obj["response"]) {
			return dst, errMalformed
		}
	case slices.Contains(respWhole, typ) || strings.HasSuffix(typ, ".done") && slices.Contains(respDeltas, strings.TrimSuffix(typ, ".done")+".delta"):
		dst = h.flushTexts(dst, endsWith(typ, k), true)
		if _, err := whole(obj); err != nil {
			return dst, err
		}
	default:
		if others() {
			return dst, errMalformed
		}
	}
	if hasSeq {
		if h.shift != 0 {
			obj["sequence_number"] = n + h.shift
			changed = true
		}
		h.seq = n + h.shift
	}
	if changed {
		b, err := jsonstrict.Marshal(obj)
		if err != nil {
			return dst, errMalformed
		}
		ev.Data = string(b)
	}
	return sse.AppendEvent(dst, ev)
}

// endsWith is which open texts an event of type typ (about k) ends.
func endsWith(typ string, k textKey) func(textKey) bool {
	switch typ {
	case "response.output_item.done":
		return func(t textKey) bool { return t.a == k.a }
	case "response.content_part.done":
		return func(t textKey) bool { return t.a == k.a && t.b == k.b && slices.Contains(respPartDeltas, t.field) }
	case "response.reasoning_summary_part.done":
		return func(t textKey) bool {
			return t.a == k.a && t.b == k.b && t.field == "response.reasoning_summary_text.delta"
		}
	}
	if d, ok := strings.CutSuffix(typ, ".done"); ok {
		return func(t textKey) bool { return t == textKey{a: k.a, b: k.b, field: d + ".delta"} }
	}
	return func(textKey) bool { return false }
}

// remember keeps a delta event's envelope (all but the text) for the event
// that will carry what its StreamGuard holds at the end.
func (h *streamHook) remember(k textKey, obj map[string]any) {
	if h.tmpl == nil {
		h.tmpl = map[textKey]map[string]any{}
	}
	t := make(map[string]any, len(obj))
	for f, v := range obj {
		switch f {
		case "delta", "sequence_number", "obfuscation":
		case "logprobs":
			t[f] = []any{}
		default:
			t[f] = v
		}
	}
	h.tmpl[k] = t
}

// flushTexts ends the open Responses texts that match and forgets them:
// under emit, what their StreamGuards held goes out as one delta event
// each, numbered after the last event sent (the events after it are
// renumbered); otherwise it is scanned and dropped.
func (h *streamHook) flushTexts(dst []byte, match func(textKey) bool, emit bool) []byte {
	keep := h.keys[:0]
	var ended []textKey
	for _, k := range h.keys {
		if match(k) {
			ended = append(ended, k)
		} else {
			keep = append(keep, k)
		}
	}
	h.keys = keep
	for _, k := range ended {
		out := h.texts[k].Flush()
		delete(h.texts, k)
		t := h.tmpl[k]
		delete(h.tmpl, k)
		if out == "" || !emit || t == nil {
			continue
		}
		e := make(map[string]any, len(t)+2)
		for f, v := range t {
			e[f] = v
		}
		h.seq++
		h.shift++
		e["delta"], e["sequence_number"] = out, h.seq
		b, err := jsonstrict.Marshal(e)
		if err != nil {
			continue // t was parsed by jsonstrict: it re-encodes
		}
		dst, _ = sse.AppendEvent(dst, sse.Event{Type: k.field, Data: string(b), HasData: true})
	}
	return dst
}

// dropLogprobs empties every "logprobs" in v (they spell the tokens out,
// one by one, where no scan sees a secret split between them) and reports
// whether any held something.
func dropLogprobs(v any) bool {
	changed := false
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			changed = dropLogprobs(e) || changed
		}
	case map[string]any:
		for k, e := range x {
			if k == "logprobs" {
				if l, ok := e.([]any); e != nil && (!ok || len(l) > 0) {
					x[k] = []any{}
					changed = true
				}
				continue
			}
			changed = dropLogprobs(e) || changed
		}
	}
	return changed
}

// redactResponse redacts a non-streamed Responses API response in place:
// every string of every member but the identifiers (responseKeep). It
// reports whether anything changed.
func (o *OutputGuard) redactResponse(ctx context.Context, root map[string]any) (bool, error) {
	changed := dropLogprobs(root["output"])
	for _, f := range responseMembers(root) {
		v := root[f]
		var c bool
		var err error
		if f == "output" {
			v, c, err = o.RedactValue(ctx, v)
		} else {
			v, c, err = o.redactRepeat(ctx, v, nil) // output_text repeats output
		}
		if err != nil {
			return false, err
		}
		root[f], changed = v, changed || c
	}
	return changed, nil
}

// redactRepeat is RedactValue for text already counted elsewhere (a
// Responses "*.done" event repeats its deltas, response.completed every
// item): its rules are recorded, and its findings count only as far as
// they exceed the others (Audit takes the larger).
func (o *OutputGuard) redactRepeat(ctx context.Context, v any, keep []string) (any, bool, error) {
	before := o.findings
	out, c, err := o.redactValue(ctx, v, keep)
	o.repeated = max(o.repeated, o.findings-before)
	o.findings = before
	return out, c, err
}
