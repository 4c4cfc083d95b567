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
	if !ev.HasData || h.done {
		return sse.AppendEvent(dst, ev)
	}
	if x.op != opResponses && ev.Data == "[DONE]" {
		h.done = true
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
	return sse.AppendEvent(dst, ev)
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
	}
	return sse.AppendEvent(dst, ev)
}

// End implements sse.Hook: caps and budgets end the stream with an error
// event in OpenAI's format and a clean end; a broken upstream ends it with
// an error so the client sees a broken stream, not a finished one.
func (h *streamHook) End(dst []byte, reason error) ([]byte, error) {
	x := h.x
	var e *protocol.Error
	switch {
	case reason == nil:
		return dst, nil
	case IsBudget(reason):
		x.usage.Cutoff = protocol.CodeBudgetExhausted
		e = budgetError(reason)
	case errors.Is(reason, sse.ErrStreamTooLarge):
		x.usage.Cutoff = "stream_bytes_exceeded"
		e = protocol.Errorf(http.StatusTooManyRequests, CodeStreamLimit, "stream exceeded the size limit configured for this backend")
	case errors.Is(reason, sse.ErrStreamTimeout):
		x.usage.Cutoff = "stream_time_exceeded"
		e = protocol.Errorf(http.StatusTooManyRequests, CodeStreamLimit, "stream exceeded the time limit configured for this backend")
	case errors.Is(reason, errMalformed), errors.Is(reason, sse.ErrLineTooLong), errors.Is(reason, sse.ErrEventTooLarge):
		x.usage.Cutoff = CodeUpstreamMalformed
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
