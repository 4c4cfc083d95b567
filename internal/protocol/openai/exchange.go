package openai

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
	"github.com/wardenhq/warden/internal/sse"
)

// exchange is one OpenAI request and its response.
type exchange struct {
	p   *Protocol
	lim Limits
	op  string

	tree    map[string]any
	bodyLen int
	calls   []protocol.Call

	model            string
	stream           bool
	guard            protocol.Guard   // from Request.Guard; nil: guardrails off
	prompt           *PromptRedaction // redact_prompt applied; nil: not asked
	out              OutputGuard      // output scanning and the redact obligation
	clientUsage      bool             // the client asked for stream_options.include_usage
	injectedUsage    bool             // Warden forced include_usage and drops the extra chunk
	maxTokens        int64
	n                int64
	tools            []string
	toolTypes        []string
	external         []map[string]any
	messageCount     int
	previousResponse string
	scan             Scan
	estPrompt        int64

	// Response side.
	meter     Meter
	ctx       context.Context
	usage     Usage
	modelsOut int
}

var _ protocol.Exchange = (*exchange)(nil)

// Calls implements protocol.Exchange.
func (x *exchange) Calls() []protocol.Call { return x.calls }

// Forward implements protocol.Exchange: every call must be allowed, the
// only obligations understood are "limits" (enforced by the gateway),
// redact and redact_prompt, and the body sent is the canonical encoding of
// the parsed (and, under redact_prompt, redacted) request, with
// stream_options.include_usage forced on for streamed completions.
func (x *exchange) Forward(ctx context.Context, ds []protocol.Decision) ([]byte, error) {
	if err := checkDecisions(x.calls, ds, ObligationRedact, ObligationRedactPrompt); err != nil {
		return nil, err
	}
	if err := x.applyGuard(ctx, ds); err != nil {
		return nil, err
	}
	if x.tree == nil {
		return nil, nil
	}
	if x.stream && (x.op == opChat || x.op == opCompletions) && !x.clientUsage {
		so, _ := x.tree["stream_options"].(map[string]any)
		if so == nil {
			so = map[string]any{}
			x.tree["stream_options"] = so
		}
		so["include_usage"] = true
		x.injectedUsage = true
	}
	b, err := jsonstrict.AppendMarshal(make([]byte, 0, x.bodyLen+64), x.tree)
	if err != nil {
		return nil, &protocol.Error{Status: http.StatusInternalServerError, Code: protocol.CodeInternal, Message: "internal error", Err: fmt.Errorf("openai: re-encode request: %w", err)}
	}
	return b, nil
}

// CheckDecisions refuses unless there is one allowing decision per call and
// every obligation is one Warden enforces: "limits" (applied by the
// gateway) and those in extra, which the caller must then apply. Shared
// with the Anthropic package.
func CheckDecisions(calls []protocol.Call, ds []protocol.Decision, extra ...string) error {
	return checkDecisions(calls, ds, extra...)
}

// checkDecisions is CheckDecisions that also accepts the obligations in
// extra (which the caller must then apply).
func checkDecisions(calls []protocol.Call, ds []protocol.Decision, extra ...string) error {
	if len(ds) != len(calls) {
		return &protocol.Error{Status: http.StatusInternalServerError, Code: protocol.CodeInternal, Message: "internal error",
			Err: fmt.Errorf("openai: %d decisions for %d calls", len(ds), len(calls))}
	}
	for i, d := range ds {
		if !d.Allow {
			if calls[i].Action == ActionConnectExternal {
				return protocol.Errorf(http.StatusForbidden, protocol.CodePolicyDenied, "request denied: tools that connect outside Warden are not allowed")
			}
			return protocol.Errorf(http.StatusForbidden, protocol.CodePolicyDenied, "request denied by policy")
		}
		for k := range d.Obligations {
			if k != "limits" && !slices.Contains(extra, k) {
				return &protocol.Error{Status: http.StatusForbidden, Code: CodeObligationRejected, Message: "request denied: policy attached a condition this endpoint cannot apply",
					Err: fmt.Errorf("openai: unsupported obligation %q", k)}
			}
		}
	}
	return nil
}

// Usage is what an exchange learned about token use.
type Usage struct {
	Prompt, Completion int64
	// Reported is true when the numbers came from the upstream; false
	// means they are Warden's estimates.
	Reported bool
	// Charged is the total passed to the meter so far.
	Charged      int64
	Finish       string
	Cutoff       string
	Model        string
	completionB  int64 // streamed completion text bytes (estimate basis)
	promptCharge bool
}

// Meter charges usage as it is learned and remembers the total charged.
// It is the part of an exchange both LLM protocols share.
type Meter struct {
	M   protocol.Meter
	Ctx context.Context
	U   *Usage
	// EstPrompt is charged before anything else.
	EstPrompt int64
}

// errBudget wraps a Meter error: the stream is cut off with budget_exhausted.
type errBudget struct{ err error }

func (e *errBudget) Error() string { return "budget exhausted: " + e.err.Error() }
func (e *errBudget) Unwrap() error { return e.err }

// IsBudget reports whether err came from a Meter refusing a charge.
func IsBudget(err error) bool {
	var b *errBudget
	return errors.As(err, &b)
}

// charge moves the total charged to target (may be negative when the
// report is below the estimate). A nil meter charges nothing.
func (m *Meter) chargeTo(target int64) error {
	d := target - m.U.Charged
	if d == 0 || m.M == nil {
		m.U.Charged = target
		return nil
	}
	m.U.Charged = target
	if err := m.M.Charge(m.Ctx, d); err != nil {
		return &errBudget{err: err}
	}
	return nil
}

// Start charges the prompt estimate once.
func (m *Meter) Start() error {
	if m.U.promptCharge {
		return nil
	}
	m.U.promptCharge = true
	m.U.Prompt = m.EstPrompt
	return m.chargeTo(m.EstPrompt)
}

// AddText charges the estimate for n more bytes of generated text:
// ceil(bytes/4) tokens.
func (m *Meter) AddText(n int) error {
	if n <= 0 || m.U.Reported {
		return nil
	}
	m.U.completionB += int64(n)
	m.U.Completion = (m.U.completionB + 3) / 4
	return m.chargeTo(m.U.Prompt + m.U.Completion)
}

// Settle replaces the estimates with reported usage and charges the
// difference.
func (m *Meter) Settle(prompt, completion int64) error {
	m.U.Prompt, m.U.Completion, m.U.Reported = prompt, completion, true
	return m.chargeTo(prompt + completion)
}

// Response implements protocol.Exchange.
func (x *exchange) Response(ctx context.Context, resp *http.Response, env *protocol.ResponseEnv) error {
	x.ctx = ctx
	x.meter = Meter{Ctx: ctx, U: &x.usage, EstPrompt: x.estPrompt}
	if env != nil {
		x.meter.M = env.Meter
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// Upstream errors pass unchanged: they are already in OpenAI's
		// format and carry no usage.
		x.usage.Finish = "upstream_status_" + strconv.Itoa(resp.StatusCode)
		return nil
	}
	if err := CheckEncoding(resp); err != nil {
		return err
	}
	switch x.op {
	case opModelsList:
		return x.filterModels(ctx, resp, env)
	case opModelsRetrieve:
		return x.checkModel(ctx, env)
	}
	if IsEventStream(resp) {
		hook := &streamHook{x: x}
		SetBody(resp, sse.NewFilter(resp.Body, hook, sse.FilterOptions{
			Reader:      sse.ReaderOptions{MaxLine: x.lim.MaxEventBytes, MaxEvent: x.lim.MaxEventBytes},
			MaxBytes:    x.lim.MaxStreamBytes,
			MaxDuration: x.lim.MaxStreamDuration,
			AfterFunc:   x.p.cfg.AfterFunc,
		}), -1)
		return nil
	}
	raw, err := ReadBounded(resp, x.lim.MaxResponseBytes)
	if err != nil {
		return err
	}
	m, err := jsonstrict.ParseMembers(raw, jsonstrict.Options{MaxBytes: x.lim.MaxResponseBytes}, "usage", "choices", "model", "status", "incomplete_details", "output")
	if err != nil {
		return &protocol.Error{Status: http.StatusBadGateway, Code: CodeUpstreamMalformed, Message: "upstream returned a malformed response", Err: fmt.Errorf("openai: response: %w", err)}
	}
	x.usage.Model, _, _ = jsonstrict.GetString(m, "model")
	if err := x.meter.Start(); err != nil {
		return budgetError(err)
	}
	if u, ok, _ := jsonstrict.GetObject(m, "usage"); ok {
		p, c := usageNumbers(u)
		if err := x.meter.Settle(p, c); err != nil {
			return budgetError(err)
		}
	} else {
		var s Scan
		s.walk(m["choices"])
		s.walk(m["output"])
		if err := x.meter.AddText(int(s.bytes)); err != nil {
			return budgetError(err)
		}
	}
	x.usage.Finish = finishOf(m)
	if x.out.Active() && (x.op == opChat || x.op == opCompletions || x.op == opResponses) {
		if raw, err = x.guardOutput(ctx, raw, m); err != nil {
			return err
		}
	}
	SetBody(resp, io.NopCloser(bytes.NewReader(raw)), int64(len(raw)))
	return nil
}

func budgetError(err error) *protocol.Error {
	return &protocol.Error{Status: http.StatusTooManyRequests, Code: protocol.CodeBudgetExhausted, Message: "token budget exhausted", Err: err}
}

// usageNumbers reads prompt/completion tokens from either usage shape
// (chat: prompt_tokens/completion_tokens; Responses: input/output_tokens).
func usageNumbers(u map[string]any) (prompt, completion int64) {
	if p, ok, _ := jsonstrict.GetInt(u, "prompt_tokens"); ok {
		prompt = p
	} else if p, ok, _ := jsonstrict.GetInt(u, "input_tokens"); ok {
		prompt = p
	}
	if c, ok, _ := jsonstrict.GetInt(u, "completion_tokens"); ok {
		completion = c
	} else if c, ok, _ := jsonstrict.GetInt(u, "output_tokens"); ok {
		completion = c
	}
	return max(prompt, 0), max(completion, 0)
}

func finishOf(m map[string]any) string {
	if cs, ok := m["choices"].([]any); ok {
		for _, c := range cs {
			if co, ok := c.(map[string]any); ok {
				if f, ok, _ := jsonstrict.GetString(co, "finish_reason"); ok {
					return f
				}
			}
		}
	}
	if d, ok, _ := jsonstrict.GetObject(m, "incomplete_details"); ok {
		if r, ok, _ := jsonstrict.GetString(d, "reason"); ok {
			return r
		}
	}
	if s, ok, _ := jsonstrict.GetString(m, "status"); ok {
		return s
	}
	return ""
}

// CheckEncoding refuses a compressed response: Warden asked for identity
// and cannot meter or filter what it cannot read.
func CheckEncoding(resp *http.Response) error {
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
		return &protocol.Error{Status: http.StatusBadGateway, Code: protocol.CodeUpstreamError, Message: "upstream sent an encoded response",
			Err: fmt.Errorf("openai: response Content-Encoding %q", ce)}
	}
	return nil
}

// IsEventStream reports whether resp is text/event-stream.
func IsEventStream(resp *http.Response) bool {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return mt == "text/event-stream"
}

// SetBody replaces resp's body and fixes the length headers (n < 0:
// unknown, streamed).
func SetBody(resp *http.Response, body io.ReadCloser, n int64) {
	resp.Body = body
	resp.ContentLength = n
	if n < 0 {
		resp.Header.Del("Content-Length")
	} else {
		resp.Header.Set("Content-Length", strconv.FormatInt(n, 10))
	}
}

// ReadBounded reads a whole non-streaming body up to limit bytes and
// closes it.
func ReadBounded(resp *http.Response, limit int64) ([]byte, error) {
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, &protocol.Error{Status: http.StatusBadGateway, Code: protocol.CodeUpstreamError, Message: "upstream response could not be read", Err: err}
	}
	if int64(len(raw)) > limit {
		return nil, &protocol.Error{Status: http.StatusBadGateway, Code: protocol.CodeUpstreamError, Message: "upstream response too large",
			Err: fmt.Errorf("openai: response over %d bytes", limit)}
	}
	return raw, nil
}

// Audit implements protocol.Exchange. Only counts and labels, never text.
func (x *exchange) Audit() map[string]any {
	a := map[string]any{"provider": "openai", "operation": x.op}
	if x.model != "" {
		a["model"] = x.model
	}
	if x.op == opModelsList {
		a["models_returned"] = x.modelsOut
		return a
	}
	if x.op == opModelsRetrieve {
		return a
	}
	a["stream"] = x.stream
	x.prompt.Audit(a)
	x.out.Audit(a)
	AuditUsage(a, &x.usage)
	return a
}

// AuditUsage adds the usage fields to an audit map.
func AuditUsage(a map[string]any, u *Usage) {
	a["prompt_tokens"] = u.Prompt
	a["completion_tokens"] = u.Completion
	a["total_tokens"] = u.Prompt + u.Completion
	a["tokens_charged"] = u.Charged
	if u.Reported {
		a["usage_source"] = "reported"
	} else {
		a["usage_source"] = "estimated"
	}
	if u.Finish != "" {
		a["finish_reason"] = u.Finish
	}
	if u.Cutoff != "" {
		a["cutoff_reason"] = u.Cutoff
	}
	if u.Model != "" {
		a["response_model"] = u.Model
	}
}

func nopCloser(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// SetPrompt records the prompt tokens the upstream reported at the start of
// a stream (Anthropic message_start) while completion is still estimated.
func (m *Meter) SetPrompt(prompt int64) error {
	m.U.promptCharge = true
	m.U.Prompt = prompt
	return m.chargeTo(m.U.Prompt + m.U.Completion)
}
