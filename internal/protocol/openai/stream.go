package openai

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
	"github.com/wardenhq/warden/internal/sse"
)

// errMalformed means the upstream sent an event Warden could not parse; the
// stream is cut off because it can no longer be metered.
var errMalformed = errors.New("openai: malformed upstream event")

// streamHook meters and filters a chat/completions or Responses stream.
type streamHook struct {
	x       *exchange
	started bool
	done    bool
	seq     int64 // last Responses sequence_number sent
	shift   int64 // Responses events Warden inserted (sequence numbers moved up)

	// Output guard (x.out active): one stream per choice and field (per
	// output item, content part and event type in Responses), in the
	// order they were opened; env is the last chunk, whose envelope (id,
	// model, ...) the events carrying flushed text reuse.
	texts map[textKey]*OutputStream
	keys  []textKey
	env   map[string]any
	tmpl  map[textKey]map[string]any // Responses: each text's last delta event, text removed
}

// textKey names one streamed text.
type textKey struct {
	a, b  int64 // choice index (chat), or output_index and content (or summary) index (Responses; -1: absent)
	field string
}

var _ sse.Hook = (*streamHook)(nil)

// eventOptions bound the JSON of one upstream event.
func (x *exchange) eventOptions() jsonstrict.Options {
	return jsonstrict.Options{MaxBytes: int64(x.lim.MaxEventBytes), MaxDepth: 64}
}

// Event implements sse.Hook.
func (h *streamHook) Event(dst []byte, ev sse.Event) ([]byte, error) {
	x := h.x
	if !h.started {
		h.started = true
		if err := x.meter.Start(); err != nil {
			return dst, err
		}
	}
	if h.done && ev.HasData && x.out.Redact {
		return dst, nil // past [DONE]: no client reads it, and it is not scanned
	}
	if h.done && ev.HasData && x.out.Active() {
		// Scan-only, the stream goes out as the upstream sent it: what
		// follows [DONE] is scanned too, whole.
		if v, err := jsonstrict.Parse([]byte(ev.Data), x.eventOptions()); err == nil {
			x.out.InspectValue(x.ctx, v)
		} else {
			x.out.InspectValue(x.ctx, ev.Data)
		}
	}
	if !ev.HasData || h.done {
		return sse.AppendEvent(dst, ev)
	}
	if x.op != opResponses && ev.Data == "[DONE]" {
		h.done = true
		dst = h.flushAll(dst, true)
		return sse.AppendEvent(dst, ev)
	}
	v, err := jsonstrict.Parse([]byte(ev.Data), x.eventOptions())
	obj, ok := v.(map[string]any)
	if err != nil || !ok {
		return dst, errMalformed
	}
	if x.op == opResponses {
		return h.responsesEvent(dst, ev, obj)
	}
	if x.out.Redact {
		if err := h.checkChunk(obj); err != nil {
			return dst, err
		}
	}
	choices, _ := obj["choices"].([]any)
	if e, isErr := obj["error"]; isErr && e != nil {
		// Only a non-null error is one ("error": null rides along on
		// some providers' ordinary chunks). An error chunk that also
		// carries choices is not a shape the output guard can vouch for.
		x.usage.Cutoff = "upstream_error"
		if len(choices) == 0 {
			if x.out.Redact {
				// Its message may quote the output: redacted whole.
				out, c, err := x.out.RedactValue(x.ctx, obj)
				if err != nil {
					return dst, fmt.Errorf("%w: error chunk: %w", errMalformed, err)
				}
				if c {
					b, err := jsonstrict.Marshal(out)
					if err != nil {
						return dst, errMalformed
					}
					ev.Data = string(b)
				}
			}
			return sse.AppendEvent(dst, ev)
		}
		if x.out.Redact {
			return dst, errMalformed
		}
	}
	if m, ok, _ := jsonstrict.GetString(obj, "model"); ok {
		x.usage.Model = m
	}
	if u, ok, _ := jsonstrict.GetObject(obj, "usage"); ok {
		p, c := usageNumbers(u)
		if err := x.meter.Settle(p, c); err != nil {
			return dst, err
		}
		if len(choices) == 0 && x.injectedUsage {
			return dst, nil // the client did not ask for this chunk
		}
	}
	var s Scan
	for _, c := range choices {
		co, ok := c.(map[string]any)
		if !ok {
			continue
		}
		if d, ok := co["delta"]; ok {
			s.walk(d)
		}
		if t, ok := co["text"].(string); ok {
			s.bytes += int64(len(t))
		}
		if f, ok, _ := jsonstrict.GetString(co, "finish_reason"); ok {
			x.usage.Finish = f
		}
	}
	if err := x.meter.AddText(int(s.bytes)); err != nil {
		return dst, err
	}
	if x.out.Active() && len(choices) > 0 {
		return h.guardChunk(dst, ev, obj, choices)
	}
	return sse.AppendEvent(dst, ev)
}

// Bounds on what an upstream can make Warden hold: one StreamGuard per
// choice and text field, per tool call. Under the redact obligation an
// index past them cuts the stream as malformed; scan-only, the text goes to
// one shared overflow stream per field.
const (
	maxChoices   = 16 // highest choice index, whatever n says
	maxToolCalls = 64 // highest tool call index per choice
	overflow     = -1 // the choice (or tool call) index of overflow streams
)

// The fields of a chat (or completions) chunk and of its choices that may
// carry a string under the redact obligation: chunkEnvelope go out as they
// are (and make the envelope of the chunks carrying held text), the
// generated text is in choices; any other field with text cuts the stream.
var (
	chunkEnvelope = []string{"id", "object", "created", "model", "system_fingerprint", "service_tier"}
	chunkKeys     = append(slices.Clone(chunkEnvelope), "usage", "choices", "obfuscation", "error")
	choiceKeys    = []string{"index", "finish_reason", "logprobs", "message", "text"} // message, text: see slots
)

// checkChunk refuses, under the redact obligation, a chunk with text
// outside the fields the output guard handles: choices not an array, a
// chat delta not an object, an unknown chunk or choice field with text.
func (h *streamHook) checkChunk(obj map[string]any) error {
	for k, v := range obj {
		switch {
		case k == "choices":
			if _, ok := v.([]any); !ok && v != nil {
				return errMalformed
			}
		case !slices.Contains(chunkKeys, k) && HasText(v):
			return errMalformed
		}
	}
	choices, _ := obj["choices"].([]any)
	for _, c := range choices {
		co, ok := c.(map[string]any)
		if !ok {
			return errMalformed
		}
		for k, v := range co {
			switch {
			case k == "delta" && h.x.op == opChat:
				if _, ok := v.(map[string]any); !ok && v != nil {
					return errMalformed
				}
			case k == "message" && h.x.op != opChat && HasText(v):
				return errMalformed // a completions choice: its text is in text
			case !slices.Contains(choiceKeys, k) && HasText(v):
				return errMalformed
			}
		}
	}
	return nil
}

// Generated-text fields of a chat delta, streamed through the output
// guard. Under the redact obligation any other delta field carrying text
// cuts the stream (fail closed); passThrough are the fields that carry no
// model text (names are identifiers the client declared).
var (
	deltaTexts  = []string{"content", "refusal", "reasoning_content", "reasoning"}
	passThrough = []string{"role", "index", "id", "type", "name", "expires_at"}
)

// A slot is one piece of generated text in a chunk: holder[field], in the
// stream named k.
type slot struct {
	k      textKey
	holder map[string]any
	field  string
}

// guardChunk passes a chunk's generated text through the output guard:
// chat deltas' content, refusal, reasoning_content, reasoning, audio
// transcript, tool call and function call arguments; completions' text.
// In scan-only mode the event goes out as it came. Under the redact
// obligation each text carries only what its StreamGuard released, logprobs
// are dropped, and when a choice finishes its held text goes out in an
// event of its own just before the finishing chunk.
func (h *streamHook) guardChunk(dst []byte, ev sse.Event, obj map[string]any, choices []any) ([]byte, error) {
	x := h.x
	redact := x.out.Redact
	h.env = obj
	changed := false
	var flush []any
	for _, c := range choices {
		co, ok := c.(map[string]any)
		if !ok {
			if redact {
				return dst, errMalformed
			}
			h.scanOther(textKey{a: overflow, field: "*"}, c)
			continue
		}
		idx, ok := h.choiceIndex(co)
		if !ok {
			if redact {
				return dst, errMalformed
			}
			idx = overflow
		}
		slots, other, err := h.slots(idx, co)
		if err != nil {
			return dst, err
		}
		if other != nil {
			h.scanOther(textKey{a: idx, field: "*"}, other)
		}
		f, _, _ := jsonstrict.GetString(co, "finish_reason")
		finishing := f != ""
		if redact {
			if lp, ok := co["logprobs"]; ok && lp != nil {
				co["logprobs"] = nil
				changed = true
			}
		}
		var held []heldText
		for _, sl := range slots {
			s, _ := sl.holder[sl.field].(string)
			st := h.texts[sl.k]
			if st == nil {
				st = h.open(sl.k)
			}
			out := st.Write(s)
			switch {
			case finishing && redact:
				held = addHeld(held, sl.k, out)
				if s != "" {
					sl.holder[sl.field] = ""
					changed = true
				}
			case redact && out != s:
				sl.holder[sl.field] = out
				changed = true
			}
		}
		if finishing {
			for _, k := range h.keys {
				if k.a != idx {
					continue
				}
				if out := h.texts[k].Flush(); redact {
					held = addHeld(held, k, out)
				}
			}
		}
		if held != nil {
			flush = append(flush, h.flushChoice(idx, held))
		}
	}
	if flush != nil {
		dst = h.appendFlush(dst, obj, flush)
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

// choiceIndex reads a choice's index: an integer below the request's n
// (default 1) and at most maxChoices.
func (h *streamHook) choiceIndex(co map[string]any) (int64, bool) {
	idx, ok, err := jsonstrict.GetInt(co, "index")
	if !ok || err != nil || idx < 0 || idx > maxChoices || idx >= max(h.x.n, 1) {
		return 0, false
	}
	return idx, true
}

// slots lists the generated text of one choice (choice index idx) and,
// scan-only, other: the fields outside the known ones that carry text, to
// be scanned as they are. Under the redact obligation a field that carries
// text Warden cannot place cuts the stream (errMalformed).
func (h *streamHook) slots(idx int64, co map[string]any) (slots []slot, other []any, err error) {
	redact := h.x.out.Redact
	// unknown is a field outside the allowlist: fatal under redact if it
	// carries text, scanned as it is otherwise.
	unknown := func(v any) error {
		if !HasText(v) {
			return nil
		}
		if redact {
			return errMalformed
		}
		other = append(other, v)
		return nil
	}
	// text adds holder[field] as a slot: a string, or null.
	text := func(k textKey, holder map[string]any, field string) error {
		switch v := holder[field].(type) {
		case nil:
		case string:
			if v != "" {
				slots = append(slots, slot{k: k, holder: holder, field: field})
			}
		default:
			return unknown(v)
		}
		return nil
	}
	if h.x.op != opChat {
		return slots, other, text(textKey{a: idx, field: "text"}, co, "text")
	}
	for _, k := range []string{"message", "text"} {
		// A chat stream carries deltas; a whole message here would be text
		// the deltas' guards never see.
		if err := unknown(co[k]); err != nil {
			return nil, nil, err
		}
	}
	d, _ := co["delta"].(map[string]any)
	for k, v := range d {
		var err error
		switch {
		case slices.Contains(deltaTexts, k):
			err = text(textKey{a: idx, field: k}, d, k)
		case k == "audio":
			err = h.objectSlots(v, unknown, func(o map[string]any, f string) (bool, error) {
				if f == "data" && o[f] != nil && redact {
					return true, errMalformed // speech cannot be redacted
				}
				if f == "transcript" {
					return true, text(textKey{a: idx, field: "audio.transcript"}, o, f)
				}
				return f == "data", nil
			})
		case k == "function_call":
			err = h.objectSlots(v, unknown, func(o map[string]any, f string) (bool, error) {
				if f == "arguments" {
					return true, text(textKey{a: idx, field: "function_call.arguments"}, o, f)
				}
				return false, nil
			})
		case k == "tool_calls":
			err = h.toolCallSlots(idx, v, unknown, text)
		case slices.Contains(passThrough, k):
		default:
			err = unknown(v)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return slots, other, nil
}

// objectSlots walks the fields of an object in a delta (audio,
// function_call, a tool call's function): field reports whether it handled
// f; other fields pass when on the allowlist and are unknown otherwise.
func (h *streamHook) objectSlots(v any, unknown func(any) error, field func(o map[string]any, f string) (bool, error)) error {
	o, ok := v.(map[string]any)
	if !ok {
		return unknown(v)
	}
	for f, fv := range o {
		done, err := field(o, f)
		if err != nil {
			return err
		}
		if !done && !slices.Contains(passThrough, f) {
			if err := unknown(fv); err != nil {
				return err
			}
		}
	}
	return nil
}

// toolCallSlots adds the arguments (function) or input (custom) of each
// streamed tool call, one stream per choice and tool call index.
func (h *streamHook) toolCallSlots(idx int64, v any, unknown func(any) error, text func(textKey, map[string]any, string) error) error {
	calls, ok := v.([]any)
	if !ok {
		return unknown(v)
	}
	for _, c := range calls {
		tc, ok := c.(map[string]any)
		if !ok {
			if err := unknown(c); err != nil {
				return err
			}
			continue
		}
		ti, ok, err := jsonstrict.GetInt(tc, "index")
		if !ok || err != nil || ti < 0 || ti > maxToolCalls {
			if h.x.out.Redact {
				return errMalformed
			}
			ti = overflow
		}
		for f, fv := range tc {
			var err error
			switch f {
			case "function", "custom":
				field := "arguments"
				if f == "custom" {
					field = "input"
				}
				k := textKey{a: idx, b: ti, field: "tool_calls." + f + "." + field}
				err = h.objectSlots(fv, unknown, func(o map[string]any, g string) (bool, error) {
					if g == field {
						return true, text(k, o, g)
					}
					return false, nil
				})
			default:
				if !slices.Contains(passThrough, f) {
					err = unknown(fv)
				}
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// HasText reports whether v (a decoded JSON value) holds a string at any
// depth. Shared with the anthropic package.
func HasText(v any) bool {
	switch x := v.(type) {
	case string:
		return true
	case []any:
		for _, e := range x {
			if HasText(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range x {
			if HasText(e) {
				return true
			}
		}
	}
	return false
}

// scanOther writes, scan-only, every string of v to stream k.
func (h *streamHook) scanOther(k textKey, v any) {
	st := h.texts[k]
	if st == nil {
		st = h.open(k)
	}
	st.ScanAll(v)
}

// heldText is text a StreamGuard released at the end of a choice.
type heldText struct {
	k    textKey
	text string
}

func addHeld(held []heldText, k textKey, s string) []heldText {
	if s == "" {
		return held
	}
	for i := range held {
		if held[i].k == k {
			held[i].text += s
			return held
		}
	}
	return append(held, heldText{k, s})
}

func (h *streamHook) open(k textKey) *OutputStream {
	if h.texts == nil {
		h.texts = map[textKey]*OutputStream{}
	}
	st := h.x.out.NewStream()
	h.texts[k] = st
	h.keys = append(h.keys, k)
	return st
}

// flushChoice is the choice of an event carrying held text, in the shape
// the fields came in.
func (h *streamHook) flushChoice(idx int64, held []heldText) map[string]any {
	c := map[string]any{"index": idx, "finish_reason": nil, "logprobs": nil}
	if h.x.op != opChat {
		c["text"] = held[0].text
		return c
	}
	d := map[string]any{}
	for _, t := range held {
		switch t.k.field {
		case "audio.transcript":
			d["audio"] = map[string]any{"transcript": t.text}
		case "function_call.arguments":
			d["function_call"] = map[string]any{"arguments": t.text}
		case "tool_calls.function.arguments", "tool_calls.custom.input":
			kind, field, _ := strings.Cut(strings.TrimPrefix(t.k.field, "tool_calls."), ".")
			calls, _ := d["tool_calls"].([]any)
			d["tool_calls"] = append(calls, map[string]any{"index": t.k.b, kind: map[string]any{field: t.text}})
		default:
			d[t.k.field] = t.text
		}
	}
	c["delta"] = d
	return c
}

// appendFlush appends a chunk with env's envelope (chunkEnvelope; usage
// emptied) and the given choices.
func (h *streamHook) appendFlush(dst []byte, env map[string]any, choices []any) []byte {
	chunk := make(map[string]any, len(chunkEnvelope)+2)
	for _, k := range chunkEnvelope {
		if v, ok := env[k]; ok {
			chunk[k] = v
		}
	}
	if _, ok := env["usage"]; ok {
		chunk["usage"] = nil
	}
	chunk["choices"] = choices
	b, err := jsonstrict.Marshal(chunk)
	if err != nil {
		return dst // env was parsed by jsonstrict: it re-encodes
	}
	dst, _ = sse.AppendEvent(dst, sse.Event{Data: string(b), HasData: true})
	return dst
}

// flushAll ends every open text. Under the redact obligation, and when
// emit is true, what was held goes out in one event (chat, completions)
// before the end of the stream; otherwise it is only scanned and counted.
func (h *streamHook) flushAll(dst []byte, emit bool) []byte {
	if h.x.op == opResponses && h.x.out.Redact {
		return h.flushTexts(dst, func(textKey) bool { return true }, emit)
	}
	emit = emit && h.x.out.Redact && h.x.op != opResponses && h.env != nil
	var order []int64
	byChoice := map[int64][]heldText{}
	for _, k := range h.keys {
		out := h.texts[k].Flush()
		if out == "" || !emit {
			continue
		}
		if _, ok := byChoice[k.a]; !ok {
			order = append(order, k.a)
		}
		byChoice[k.a] = addHeld(byChoice[k.a], k, out)
	}
	if len(order) == 0 {
		return dst
	}
	choices := make([]any, len(order))
	for i, idx := range order {
		choices[i] = h.flushChoice(idx, byChoice[idx])
	}
	return h.appendFlush(dst, h.env, choices)
}

func (h *streamHook) responsesEvent(dst []byte, ev sse.Event, obj map[string]any) ([]byte, error) {
	x := h.x
	n, hasSeq, _ := jsonstrict.GetInt(obj, "sequence_number")
	if hasSeq && !x.out.Redact {
		h.seq = n
	}
	typ, _, _ := jsonstrict.GetString(obj, "type")
	if x.out.Active() && !x.out.Redact {
		h.scanResponsesWhole(typ, obj)
	}
	switch {
	case typ == "error":
		x.usage.Cutoff = "upstream_error"
	case strings.HasSuffix(typ, ".delta"):
		if d, ok := obj["delta"].(string); ok {
			if err := x.meter.AddText(len(d)); err != nil {
				return dst, err
			}
			if x.out.Active() && !x.out.Redact {
				// Scan only: every delta, output text, refusals, function
				// call arguments, reasoning summaries.
				oi, _, _ := jsonstrict.GetInt(obj, "output_index")
				ci, _, _ := jsonstrict.GetInt(obj, "content_index")
				if oi < 0 || oi > maxToolCalls || ci < 0 || ci > maxToolCalls {
					oi, ci = overflow, overflow
				}
				k := textKey{a: oi, b: ci, field: typ}
				st := h.texts[k]
				if st == nil {
					st = h.open(k)
				}
				st.Write(d)
			}
		}
	case typ == "response.completed" || typ == "response.incomplete" || typ == "response.failed":
		r, _, _ := jsonstrict.GetObject(obj, "response")
		if r != nil {
			if m, ok, _ := jsonstrict.GetString(r, "model"); ok {
				x.usage.Model = m
			}
			x.usage.Finish = finishOf(r)
			if u, ok, _ := jsonstrict.GetObject(r, "usage"); ok {
				p, c := usageNumbers(u)
				if err := x.meter.Settle(p, c); err != nil {
					return dst, err
				}
			}
		}
		h.done = true
		if !x.out.Redact {
			dst = h.flushAll(dst, false)
		}
	}
	if x.out.Redact {
		return h.redactResponsesEvent(dst, ev, obj, typ, n, hasSeq)
	}
	return sse.AppendEvent(dst, ev)
}

// scanResponsesWhole scans, scan-only, the complete values a Responses
// event carries (the events the redact path treats whole: items, parts,
// "*.done", annotations, errors, the response object's output), one
// stream per event type whose findings count as repeats of the deltas'
// (OutputStream.repeat). An event of a type Warden does not know that
// carries text makes the audit "partial".
func (h *streamHook) scanResponsesWhole(typ string, obj map[string]any) {
	var v any
	switch {
	case slices.Contains(respDeltas, typ):
		return // streamed, per text
	case slices.Contains(respLifecycle, typ):
		r, ok := obj["response"].(map[string]any)
		if !ok {
			v = obj["response"]
			break
		}
		out := map[string]any{}
		for _, f := range responseMembers(r) {
			out[f] = r[f]
		}
		v = out
	default:
		rest := map[string]any{}
		for f, fv := range obj {
			if !slices.Contains(respEnvelope, f) {
				rest[f] = fv
			}
		}
		whole := slices.Contains(respWhole, typ) || strings.HasSuffix(typ, ".done") && slices.Contains(respDeltas, strings.TrimSuffix(typ, ".done")+".delta")
		if !whole {
			if _, ok := rest["delta"].(string); ok && strings.HasSuffix(typ, ".delta") {
				delete(rest, "delta") // scanned as a stream
			}
			if HasText(rest) {
				h.x.out.MarkPartial()
			}
			return
		}
		v = rest
	}
	if !HasText(v) {
		return
	}
	k := textKey{a: overflow, b: overflow, field: "whole " + typ}
	st := h.texts[k]
	if st == nil {
		st = h.open(k)
		st.repeat = true
	}
	st.ScanAll(v)
}

// End implements sse.Hook: caps and budgets end the stream with an error
// event in OpenAI's format and a clean end; a broken upstream ends it with
// an error so the client sees a broken stream, not a finished one.
func (h *streamHook) End(dst []byte, reason error) ([]byte, error) {
	x := h.x
	var e *protocol.Error
	// Text the output guard still holds was metered and scanned: it goes
	// out (redacted) at a clean end and before a budget or time cut-off;
	// after any other failure it is dropped with the rest of the stream.
	switch {
	case reason == nil:
		return h.flushAll(dst, true), nil
	case IsBudget(reason):
		x.usage.Cutoff = protocol.CodeBudgetExhausted
		e = budgetError(reason)
		dst = h.flushAll(dst, true)
	case errors.Is(reason, sse.ErrStreamTooLarge):
		x.usage.Cutoff = "stream_bytes_exceeded"
		e = protocol.Errorf(http.StatusTooManyRequests, CodeStreamLimit, "stream exceeded the size limit configured for this backend")
		dst = h.flushAll(dst, false)
	case errors.Is(reason, sse.ErrStreamTimeout):
		x.usage.Cutoff = "stream_time_exceeded"
		e = protocol.Errorf(http.StatusTooManyRequests, CodeStreamLimit, "stream exceeded the time limit configured for this backend")
		dst = h.flushAll(dst, true)
	case errors.Is(reason, errMalformed), errors.Is(reason, sse.ErrLineTooLong), errors.Is(reason, sse.ErrEventTooLarge):
		x.usage.Cutoff = CodeUpstreamMalformed
		dst = h.flushAll(dst, false)
		e = protocol.Errorf(http.StatusBadGateway, CodeUpstreamMalformed, "upstream sent a malformed stream")
	case errors.Is(reason, io.ErrClosedPipe):
		// Nothing more goes out, but what was sent is scanned (scan-only
		// batches) so the audit's "scanned" holds.
		x.usage.Cutoff = "client_closed"
		return h.flushAll(dst, false), nil
	default:
		x.usage.Cutoff = protocol.CodeUpstreamError
		return h.flushAll(dst, false), fmt.Errorf("openai: upstream stream: %w", reason)
	}
	x.p.log.LogAttrs(context.Background(), slog.LevelDebug, "openai: stream cut off", slogString("cutoff_reason", x.usage.Cutoff), slogString("model", x.model))
	return h.errorEvent(dst, e), nil
}

// errorEvent appends the error event a client of this endpoint expects.
func (h *streamHook) errorEvent(dst []byte, e *protocol.Error) []byte {
	if h.x.op == opResponses {
		b, _ := jsonstrict.Marshal(map[string]any{"type": "error", "code": e.Code, "message": e.Message, "param": nil, "sequence_number": h.seq + 1})
		dst, _ = sse.AppendEvent(dst, sse.Event{Type: "error", Data: string(b), HasData: true})
		return dst
	}
	b, _ := jsonstrict.Marshal(errorObject(e))
	dst, _ = sse.AppendEvent(dst, sse.Event{Data: string(b), HasData: true})
	return dst
}
