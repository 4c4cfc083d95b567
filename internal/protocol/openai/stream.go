package openai

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
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
	seq     int64 // last Responses sequence_number

	// Output guard (x.out active): one stream per choice and field (per
	// output item, content part and event type in Responses), in the
	// order they were opened; env is the last chunk, whose envelope (id,
	// model, ...) the events carrying flushed text reuse.
	texts map[textKey]*OutputStream
	keys  []textKey
	env   map[string]any
}

// textKey names one streamed text.
type textKey struct {
	a, b  int64 // choice index (chat), or output_index and content_index (Responses)
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
	if _, isErr := obj["error"]; isErr {
		x.usage.Cutoff = "upstream_error"
		return sse.AppendEvent(dst, ev)
	}
	if m, ok, _ := jsonstrict.GetString(obj, "model"); ok {
		x.usage.Model = m
	}
	choices, _ := obj["choices"].([]any)
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

// guardChunk passes a chunk's generated text (chat: choices[].delta.content
// and .refusal; completions: choices[].text) through the output guard. In
// scan-only mode the event goes out as it came. Under the redact
// obligation each text field carries only what its StreamGuard released,
// logprobs are dropped, and when a choice finishes its held text goes out
// in an event of its own just before the finishing chunk.
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
			continue
		}
		idx, _, _ := jsonstrict.GetInt(co, "index")
		holder, fields := co, completionFields
		if x.op == opChat {
			holder, _ = co["delta"].(map[string]any)
			fields = outputFields
		}
		f, _, _ := jsonstrict.GetString(co, "finish_reason")
		finishing := f != ""
		if redact {
			if lp, ok := co["logprobs"]; ok && lp != nil {
				co["logprobs"] = nil
				changed = true
			}
		}
		var held map[string]any
		for _, field := range fields {
			s, isStr := holder[field].(string)
			if !isStr && holder[field] != nil && redact {
				return dst, errMalformed // text in a shape not scanned
			}
			k := textKey{a: idx, field: field}
			st := h.texts[k]
			if st == nil && s != "" {
				st = h.open(k)
			}
			if st == nil {
				continue
			}
			out := st.Write(s)
			switch {
			case finishing && redact:
				out += st.Flush()
				if out != "" {
					if held == nil {
						held = map[string]any{}
					}
					held[field] = out
				}
				if s != "" {
					holder[field] = ""
					changed = true
				}
			case finishing:
				st.Flush()
			case redact && out != s:
				holder[field] = out
				changed = true
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

// completionFields are the generated-text fields of a legacy completion
// choice.
var completionFields = []string{"text"}

func (h *streamHook) open(k textKey) *OutputStream {
	if h.texts == nil {
		h.texts = map[textKey]*OutputStream{}
	}
	st := h.x.out.NewStream()
	h.texts[k] = st
	h.keys = append(h.keys, k)
	return st
}

// flushChoice is the choice of an event carrying held text.
func (h *streamHook) flushChoice(idx int64, held map[string]any) map[string]any {
	c := map[string]any{"index": idx, "finish_reason": nil, "logprobs": nil}
	if h.x.op == opChat {
		c["delta"] = held
	} else {
		c["text"] = held["text"]
	}
	return c
}

// appendFlush appends a chunk with env's envelope (id, object, created,
// model, ...; usage emptied) and the given choices.
func (h *streamHook) appendFlush(dst []byte, env map[string]any, choices []any) []byte {
	chunk := make(map[string]any, len(env))
	for k, v := range env {
		chunk[k] = v
	}
	if _, ok := chunk["usage"]; ok {
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
// before the end of the stream; otherwise it is only counted.
func (h *streamHook) flushAll(dst []byte, emit bool) []byte {
	emit = emit && h.x.out.Redact && h.x.op != opResponses && h.env != nil
	var order []int64
	byChoice := map[int64]map[string]any{}
	for _, k := range h.keys {
		out := h.texts[k].Flush()
		if out == "" || !emit {
			continue
		}
		held := byChoice[k.a]
		if held == nil {
			held = map[string]any{}
			byChoice[k.a] = held
			order = append(order, k.a)
		}
		held[k.field] = out
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
	if n, ok, _ := jsonstrict.GetInt(obj, "sequence_number"); ok {
		h.seq = n
	}
	typ, _, _ := jsonstrict.GetString(obj, "type")
	switch {
	case typ == "error":
		x.usage.Cutoff = "upstream_error"
	case strings.HasSuffix(typ, ".delta"):
		if d, ok := obj["delta"].(string); ok {
			if err := x.meter.AddText(len(d)); err != nil {
				return dst, err
			}
			if x.out.Active() && (typ == "response.output_text.delta" || typ == "response.refusal.delta") {
				// Scan only: redact is refused for Responses.
				oi, _, _ := jsonstrict.GetInt(obj, "output_index")
				ci, _, _ := jsonstrict.GetInt(obj, "content_index")
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
		dst = h.flushAll(dst, false)
	}
	return sse.AppendEvent(dst, ev)
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
		x.usage.Cutoff = "client_closed"
		return dst, nil
	default:
		x.usage.Cutoff = protocol.CodeUpstreamError
		return dst, fmt.Errorf("openai: upstream stream: %w", reason)
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
