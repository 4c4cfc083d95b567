package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/guard"
	"github.com/wardenhq/warden/internal/protocol"
)

// newScanner builds the one guard scanner of the gateway from the config
// section (nil section: guardrails off, nil scanner).
func newScanner(gc *config.Guard, log *slog.Logger) (*guard.Scanner, error) {
	if gc == nil {
		return nil, nil
	}
	cfg := guard.Config{
		Disable:  gc.Disable,
		FailMode: guard.FailMode(gc.FailMode),
		Timeout:  gc.Timeout,
		MaxBytes: gc.MaxBytes,
		Logger:   log,
		// StreamWindow: the look-behind of streamed output redaction.
		StreamWindow: gc.StreamWindow,
	}
	if r := gc.Remote; r != nil {
		rc := &guard.RemoteConfig{URL: r.URL, Timeout: r.Timeout, FailMode: guard.FailMode(r.FailMode), MaxBytes: r.MaxBytes}
		for _, c := range r.Contexts {
			rc.Contexts = append(rc.Contexts, guard.Context(c))
		}
		cfg.Remote = rc
		if log != nil && !strings.HasPrefix(r.URL, "https://") {
			log.Warn("guard: remote classifier over plain HTTP; run it on loopback or a trusted network only", "url", r.URL)
		}
	}
	if len(gc.Thresholds) > 0 {
		cfg.Thresholds = make(map[guard.Context]guard.Thresholds, len(gc.Thresholds))
		for k, t := range gc.Thresholds {
			// A field left out (zero) keeps the detectors' default for it.
			d := guard.DefaultThresholds[guard.Context(k)]
			if t.PromptInjection != 0 {
				d.PromptInjection = t.PromptInjection
			}
			if t.Secret != 0 {
				d.Secret = t.Secret
			}
			if t.PII != 0 {
				d.PII = t.PII
			}
			cfg.Thresholds[guard.Context(k)] = d
		}
	}
	return guard.New(cfg)
}

// guardContext says whether a request body of this kind is scanned and in
// which context: "" means every string's context is inferred from where it
// sits (user turn, tool result, tool description, ...); ok false means the
// body is not scanned at all.
func guardContext(kind string, calls []protocol.Call) (c guard.Context, ok bool) {
	switch kind {
	case config.KindOpenAI, config.KindAnthropic, config.KindMCP:
		return "", true
	case config.KindQdrant:
		// Payload text written into a collection is what a later retrieval
		// hands to a model: third-party text, scanned as a document.
		for _, cl := range calls {
			switch cl.Operation {
			case "points.upsert", "points.batch", "points.payload.set", "points.payload.overwrite":
				return guard.ContextDocument, true
			}
		}
	}
	return "", false
}

// scanRequest runs the detectors over a request body under the configured
// budget and returns the merged verdict for input.guards (nil when guards
// are off or the body is not scanned). An over-budget scan under fail mode
// "closed" is refused here, before policy, with guard_blocked.
func (h *handler) scanRequest(ctx context.Context, st *reqState, body []byte, calls []protocol.Call) (map[string]any, *protocol.Error) {
	s := h.g.guard
	if s == nil || len(body) == 0 {
		return nil, nil
	}
	gc, ok := guardContext(st.kind, calls)
	if !ok {
		return nil, nil
	}
	sctx, cancel := context.WithTimeout(ctx, h.g.cfg.Guard.Timeout)
	defer cancel()
	start := h.g.now()
	leaves, err := s.ScanJSON(sctx, body, gc)
	over := err != nil || sctx.Err() != nil
	if ctx.Err() != nil {
		// The client or the kill switch ended the request, not the budget.
		return nil, &protocol.Error{Status: protocol.StatusClientClosedRequest, Code: protocol.CodeClientClosed, Message: "request cancelled", Err: ctx.Err()}
	}
	in := s.Summarize(leaves, over)
	h.g.log.LogAttrs(ctx, slog.LevelDebug, "guard scan",
		slog.String("request_id", st.id), slog.Int("leaves", len(leaves)),
		slog.Bool("blocked", in["blocked"].(bool)), slog.Duration("took", h.g.now().Sub(start)))
	st.guards = in
	if in["over_budget"].(bool) && in["blocked"].(bool) && h.g.cfg.Guard.FailMode != string(guard.FailOpen) {
		return in, &protocol.Error{Status: http.StatusForbidden, Code: protocol.CodeGuardBlocked, Message: "request blocked: content scan did not finish within its budget", Err: err}
	}
	return in, nil
}

// withGuards returns the protocol audit fields plus the request's guard
// summary under "guards" (a copy: the exchange's map is not modified).
func withGuards(st *reqState, m map[string]any) map[string]any {
	if st.guards == nil {
		return m
	}
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	out["guards"] = st.guards
	return out
}

// guardDenied reports whether policy refused because of a guard verdict
// (a reason "guard_blocked:<category>"), so the refusal carries the stable
// code guard_blocked rather than policy_denied.
func guardDenied(ds []protocol.Decision) bool {
	for _, d := range ds {
		for _, r := range d.Reasons {
			if strings.HasPrefix(r, protocol.CodeGuardBlocked+":") {
				return true
			}
		}
	}
	return false
}
