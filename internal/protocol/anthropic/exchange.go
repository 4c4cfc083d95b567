package anthropic

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
	"github.com/wardenhq/warden/internal/protocol/openai"
	"github.com/wardenhq/warden/internal/sse"
)

type exchange struct {
	p   *Protocol
	lim openai.Limits
	op  string

	tree    map[string]any
	bodyLen int
	calls   []protocol.Call

	model        string
	stream       bool
	maxTokens    int64
	tools        []string
	toolTypes    []string
	external     []map[string]any
	betas        []string
	messageCount int
	scan         openai.Scan
	estPrompt    int64
	guard        protocol.Guard          // from Request.Guard; nil: guardrails off
	prompt       *openai.PromptRedaction // redact_prompt applied; nil: not asked
	out          openai.OutputGuard      // output scanning and the redact obligation

	meter     openai.Meter
	usage     openai.Usage
	modelsOut int
	ctx       context.Context // the response's, for the output guard
}

var _ protocol.Exchange = (*exchange)(nil)

// Calls implements protocol.Exchange.
func (x *exchange) Calls() []protocol.Call { return x.calls }

// Forward implements protocol.Exchange: all calls allowed, only obligations
// Warden enforces ("limits", redact, redact_prompt), canonical re-encoding
// of the parsed (and, under redact_prompt, redacted) body.
func (x *exchange) Forward(ctx context.Context, ds []protocol.Decision) ([]byte, error) {
	if err := openai.CheckDecisions(x.calls, ds, openai.ObligationRedact, openai.ObligationRedactPrompt); err != nil {
		return nil, err
	}
	if err := x.applyGuard(ctx, ds); err != nil {
		return nil, err
	}
	if x.tree == nil {
		return nil, nil
	}
	b, err := jsonstrict.AppendMarshal(make([]byte, 0, x.bodyLen+64), x.tree)
	if err != nil {
		return nil, &protocol.Error{Status: http.StatusInternalServerError, Code: protocol.CodeInternal, Message: "internal error", Err: fmt.Errorf("anthropic: re-encode request: %w", err)}
	}
	return b, nil
}

func budgetError(err error) *protocol.Error {
	return &protocol.Error{Status: http.StatusTooManyRequests, Code: protocol.CodeBudgetExhausted, Message: "token budget exhausted", Err: err}
}

func malformed(err error) *protocol.Error {
	return &protocol.Error{Status: http.StatusBadGateway, Code: openai.CodeUpstreamMalformed, Message: "upstream returned a malformed response", Err: err}
}

// Response implements protocol.Exchange.
func (x *exchange) Response(ctx context.Context, resp *http.Response, env *protocol.ResponseEnv) error {
	x.ctx = ctx
	x.meter = openai.Meter{Ctx: ctx, U: &x.usage, EstPrompt: x.estPrompt}
	if env != nil && x.op == opMessages {
		x.meter.M = env.Meter // count_tokens is free: nothing to charge
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		x.usage.Finish = "upstream_status_" + strconv.Itoa(resp.StatusCode)
		return nil
	}
	if err := openai.CheckEncoding(resp); err != nil {
		return err
	}
	switch x.op {
	case opModelsList:
		raw, err := openai.ReadBounded(resp, x.lim.MaxResponseBytes)
		if err != nil {
			return err
		}
		x.modelsOut, err = openai.FilterModelList(ctx, env, "anthropic", raw, x.lim.MaxResponseBytes, resp)
		return err
	case opModelsRetrieve:
		ok, err := openai.AuthorizeModels(ctx, env, "anthropic", []string{x.model})
		if err != nil {
			return err
		}
		if !ok[0] {
			return protocol.Errorf(http.StatusNotFound, openai.CodeModelNotFound, "model: %s", x.model)
		}
		return nil
	}
	if openai.IsEventStream(resp) {
		openai.SetBody(resp, sse.NewFilter(resp.Body, &streamHook{x: x}, sse.FilterOptions{
			Reader:      sse.ReaderOptions{MaxLine: x.lim.MaxEventBytes, MaxEvent: x.lim.MaxEventBytes},
			MaxBytes:    x.lim.MaxStreamBytes,
			MaxDuration: x.lim.MaxStreamDuration,
			AfterFunc:   x.p.cfg.AfterFunc,
		}), -1)
		return nil
	}
	raw, err := openai.ReadBounded(resp, x.lim.MaxResponseBytes)
	if err != nil {
		return err
	}
	m, err := jsonstrict.ParseMembers(raw, jsonstrict.Options{MaxBytes: x.lim.MaxResponseBytes}, "usage", "stop_reason", "model", "input_tokens", "content")
	if err != nil {
		return malformed(fmt.Errorf("anthropic: response: %w", err))
	}
	x.usage.Model, _, _ = jsonstrict.GetString(m, "model")
	x.usage.Finish, _, _ = jsonstrict.GetString(m, "stop_reason")
	if x.op == opCountTokens {
		n, _, _ := jsonstrict.GetInt(m, "input_tokens")
		x.usage.Prompt, x.usage.Reported = n, true
	} else if err := x.meter.Start(); err != nil {
		return budgetError(err)
	} else if u, ok, _ := jsonstrict.GetObject(m, "usage"); ok {
		in, out := usageNumbers(u)
		if err := x.meter.Settle(in, out); err != nil {
			return budgetError(err)
		}
	}
	if x.op == opMessages && x.out.Active() {
		if raw, err = x.guardOutput(ctx, raw, m); err != nil {
			return err
		}
	}
	openai.SetBody(resp, io.NopCloser(bytes.NewReader(raw)), int64(len(raw)))
	return nil
}

// usageNumbers reads Anthropic usage: input = input_tokens +
// cache_creation_input_tokens + cache_read_input_tokens; output =
// output_tokens (cumulative in message_delta).
func usageNumbers(u map[string]any) (in, out int64) {
	for _, k := range []string{"input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"} {
		if n, ok, _ := jsonstrict.GetInt(u, k); ok && n > 0 {
			in += n
		}
	}
	out, _, _ = jsonstrict.GetInt(u, "output_tokens")
	return in, max(out, 0)
}

// Audit implements protocol.Exchange. Only counts and labels, never text.
func (x *exchange) Audit() map[string]any {
	a := map[string]any{"provider": "anthropic", "operation": x.op}
	if x.model != "" {
		a["model"] = x.model
	}
	switch x.op {
	case opModelsList:
		a["models_returned"] = x.modelsOut
		return a
	case opModelsRetrieve:
		return a
	}
	a["stream"] = x.stream
	x.prompt.Audit(a)
	x.out.Audit(a)
	openai.AuditUsage(a, &x.usage)
	return a
}

var errMalformed = errors.New("anthropic: malformed upstream event")

type streamHook struct {
	x       *exchange
	started bool
	inSeen  bool
	// texts are the output guard's streams, one per content block index
	// and kind of text, in the order opened.
	texts map[blockKey]*openai.OutputStream
	keys  []blockKey
}

var _ sse.Hook = (*streamHook)(nil)

// Event implements sse.Hook.
func (h *streamHook) Event(dst []byte, ev sse.Event) ([]byte, error) {
	x := h.x
	if !h.started {
		h.started = true
		if err := x.meter.Start(); err != nil {
			return dst, err
		}
	}
	if !ev.HasData {
		return sse.AppendEvent(dst, ev)
	}
	v, err := jsonstrict.Parse([]byte(ev.Data), jsonstrict.Options{MaxBytes: int64(x.lim.MaxEventBytes)})
	obj, ok := v.(map[string]any)
	if err != nil || !ok {
		return dst, errMalformed
	}
	typ, _, _ := jsonstrict.GetString(obj, "type")
	if ev.Type != "" && ev.Type != typ {
		return dst, errMalformed // a client may dispatch on either name
	}
	if x.out.Redact {
		switch typ {
		case "ping", "content_block_stop", "message_stop", "message_delta":
			if controlText(obj) {
				return dst, errMalformed
			}
		case "error":
			// Its message may quote the output: redacted whole.
			if _, c, err := x.out.RedactValue(x.ctx, obj); err != nil {
				return dst, fmt.Errorf("%w: error event: %w", errMalformed, err)
			} else if c {
				x.usage.Cutoff = protocol.CodeUpstreamError
				return reencode(dst, ev, obj)
			}
		}
	}
	switch typ {
	case "message_start":
		msg, _, _ := jsonstrict.GetObject(obj, "message")
		if msg != nil {
			x.usage.Model, _, _ = jsonstrict.GetString(msg, "model")
			if u, ok, _ := jsonstrict.GetObject(msg, "usage"); ok {
				in, _ := usageNumbers(u)
				h.inSeen = true
				if err := x.meter.SetPrompt(in); err != nil {
					return dst, err
				}
			}
		}
		if x.out.Active() {
			return h.guardMessageStart(dst, ev, obj)
		}
	case "content_block_delta":
		if d, ok, _ := jsonstrict.GetObject(obj, "delta"); ok {
			n := 0
			for _, k := range []string{"text", "partial_json", "thinking"} {
				if s, ok := d[k].(string); ok {
					n += len(s)
				}
			}
			if err := x.meter.AddText(n); err != nil {
				return dst, err
			}
			if x.out.Active() {
				return h.guardDelta(dst, ev, obj, d)
			}
		} else if x.out.Redact && openai.HasText(obj["delta"]) {
			return dst, errMalformed
		}
	case "content_block_start":
		if x.out.Active() {
			return h.guardStart(dst, ev, obj)
		}
	case "content_block_stop":
		if x.out.Active() {
			idx, err := h.blockIndex(obj)
			if err != nil {
				return dst, err
			}
			if dst, err = h.flush(dst, idx, true); err != nil {
				return dst, err
			}
		}
	case "message_stop":
		if dst, err = h.flushAll(dst, true); err != nil {
			return dst, err
		}
	case "message_delta":
		if dst, err = h.flushAll(dst, true); err != nil {
			return dst, err
		}
		if d, ok, _ := jsonstrict.GetObject(obj, "delta"); ok {
			if r, ok, _ := jsonstrict.GetString(d, "stop_reason"); ok {
				x.usage.Finish = r
			}
		}
		if u, ok, _ := jsonstrict.GetObject(obj, "usage"); ok {
			in, out := usageNumbers(u)
			if in == 0 || h.inSeen && !hasInput(u) {
				in = x.usage.Prompt
			}
			if err := x.meter.Settle(in, out); err != nil {
				return dst, err
			}
		}
	case "error":
		x.usage.Cutoff = protocol.CodeUpstreamError
	case "ping":
	default:
		// An event type this filter does not know: under the redact
		// obligation, one carrying text is cut (fail closed); scan-only,
		// its text is scanned.
		if x.out.Active() {
			rest := make(map[string]any, len(obj))
			for k, v := range obj {
				if k != "type" {
					rest[k] = v
				}
			}
			if openai.HasText(rest) {
				if x.out.Redact {
					return dst, errMalformed
				}
				h.scanOther(blockKey{-1, "other"}, rest)
			}
		}
	}
	return sse.AppendEvent(dst, ev)
}

// controlText reports whether an event that carries no generated text
// (ping, content_block_stop, message_stop, message_delta) has text outside
// type, index, usage, delta.stop_reason and delta.stop_sequence.
func controlText(obj map[string]any) bool {
	for k, v := range obj {
		switch k {
		case "type", "index", "usage":
		case "delta":
			d, ok := v.(map[string]any)
			if !ok {
				if openai.HasText(v) {
					return true
				}
				continue
			}
			for dk, dv := range d {
				if dk != "stop_reason" && dk != "stop_sequence" && openai.HasText(dv) {
					return true
				}
			}
		default:
			if openai.HasText(v) {
				return true
			}
		}
	}
	return false
}

func hasInput(u map[string]any) bool {
	_, ok := u["input_tokens"]
	return ok
}

// End implements sse.Hook.
func (h *streamHook) End(dst []byte, reason error) ([]byte, error) {
	x := h.x
	var e *protocol.Error
	// Text the output guard still holds was metered and scanned: it goes
	// out (redacted) at a clean end and before a budget or time cut-off;
	// after any other failure it is dropped with the rest of the stream,
	// but scanned (scan-only batches) so the audit's "scanned" holds.
	var ferr error
	switch {
	case reason == nil:
		if dst, ferr = h.flushAll(dst, true); ferr == nil {
			return dst, nil
		}
		reason = ferr
	case openai.IsBudget(reason), errors.Is(reason, sse.ErrStreamTimeout):
		dst, ferr = h.flushAll(dst, true)
	case errors.Is(reason, io.ErrClosedPipe):
		x.usage.Cutoff = "client_closed"
		dst, _ = h.flushAll(dst, false)
		return dst, nil
	default:
		dst, _ = h.flushAll(dst, false)
	}
	switch {
	case errors.Is(reason, errUnredactable) || errors.Is(ferr, errUnredactable):
		x.usage.Cutoff = protocol.CodeGuardBlocked
		e = &protocol.Error{Status: http.StatusBadGateway, Code: protocol.CodeGuardBlocked, Message: "response withheld: it holds a secret or personal data that cannot be redacted (signed thinking)", Err: reason}
	case openai.IsBudget(reason):
		x.usage.Cutoff = protocol.CodeBudgetExhausted
		e = budgetError(reason)
	case errors.Is(reason, sse.ErrStreamTooLarge):
		x.usage.Cutoff = "stream_bytes_exceeded"
		e = protocol.Errorf(http.StatusTooManyRequests, openai.CodeStreamLimit, "stream exceeded the size limit configured for this backend")
	case errors.Is(reason, sse.ErrStreamTimeout):
		x.usage.Cutoff = "stream_time_exceeded"
		e = protocol.Errorf(http.StatusTooManyRequests, openai.CodeStreamLimit, "stream exceeded the time limit configured for this backend")
	case errors.Is(reason, errMalformed), errors.Is(reason, sse.ErrLineTooLong), errors.Is(reason, sse.ErrEventTooLarge):
		x.usage.Cutoff = openai.CodeUpstreamMalformed
		e = malformed(reason)
	default:
		x.usage.Cutoff = protocol.CodeUpstreamError
		return dst, fmt.Errorf("anthropic: upstream stream: %w", reason)
	}
	x.p.log.LogAttrs(context.Background(), slog.LevelDebug, "anthropic: stream cut off", slog.String("cutoff_reason", x.usage.Cutoff), slog.String("model", x.model))
	b, _ := jsonstrict.Marshal(errorObject(e))
	dst, _ = sse.AppendEvent(dst, sse.Event{Type: "error", Data: string(b), HasData: true})
	return dst, nil
}
