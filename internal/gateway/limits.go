package gateway

import (
	"context"
	"net/http"

	"github.com/wardenhq/warden/internal/protocol"
	"github.com/wardenhq/warden/internal/ratelimit"
)

// grant is an admitted request's hold on its limits and budgets: it meters
// usage learned from the response and settles at the end.
type grant interface {
	protocol.Meter
	// Settle charges or refunds the difference between what was reserved
	// and actual (tokens reported by the upstream; < 0 = unknown).
	Settle(ctx context.Context, actual int64)
	// Release returns what was reserved but not used (error paths). It is a
	// no-op after Settle.
	Release()
	// Headers are the remaining-budget headers for the client.
	Headers() http.Header
	// Degraded says how a limiter store failure was handled ("" = it wasn't).
	Degraded() string
}

type limitErr struct {
	err     *protocol.Error
	headers http.Header
	// degraded names how a limiter store failure was handled, for the audit.
	degraded string
}

// admitter turns policy obligations into limit checks. Nil: no limits.
type admitter interface {
	Admit(ctx context.Context, spiffeID string, calls []protocol.Call, ds []protocol.Decision) (grant, *limitErr)
}

func (g *Gateway) admit(ctx context.Context, st *reqState, calls []protocol.Call, ds []protocol.Decision) (grant, *limitErr) {
	if g.limits == nil {
		return nil, nil
	}
	return g.limits.Admit(ctx, st.peer.ID.String(), calls, ds)
}

// limiter adapts ratelimit.Limiter to the request path: the first allowed
// call whose decision carries a "limits" obligation is admitted on its
// estimate (estimated prompt tokens plus the requested maximum).
type limiter struct{ l *ratelimit.Limiter }

func (lm limiter) Admit(ctx context.Context, id string, calls []protocol.Call, ds []protocol.Decision) (grant, *limitErr) {
	for i, d := range ds {
		if !d.Allow {
			continue
		}
		ob, ok := d.Obligations["limits"]
		if !ok {
			continue
		}
		spec, err := ratelimit.ParseObligation(ob)
		if err != nil {
			// An obligation Warden does not understand refuses the request.
			return nil, &limitErr{err: &protocol.Error{Status: http.StatusForbidden, Code: protocol.CodePolicyError, Message: "request denied: policy obligation not understood", Err: err}}
		}
		if spec.PerID.IsZero() && spec.PerModel.IsZero() {
			return nil, nil
		}
		res := calls[i].Resource
		req := ratelimit.Request{
			SpiffeID: id,
			PerID:    spec.PerID,
			PerModel: spec.PerModel,
			Tokens:   intField(res, "estimated_prompt_tokens") + intField(res, "max_tokens"),
		}
		req.Model, _ = res["model"].(string)
		r, result := lm.l.Reserve(ctx, req)
		if !result.Allowed {
			h := http.Header{}
			result.SetHeaders(h)
			return nil, &limitErr{err: result.Denial(), headers: h, degraded: result.Degraded}
		}
		return reservation{r}, nil
	}
	return nil, nil
}

type reservation struct{ r *ratelimit.Reservation }

func (r reservation) Charge(ctx context.Context, n int64) error { return r.r.Charge(ctx, n) }

func (r reservation) Settle(ctx context.Context, actual int64) {
	if actual < 0 {
		actual = r.r.Charged()
	}
	_ = r.r.Settle(context.WithoutCancel(ctx), actual)
}

func (r reservation) Release() { _ = r.r.Release(context.Background()) }

func (r reservation) Degraded() string { return r.r.Result().Degraded }

func (r reservation) Headers() http.Header {
	h := http.Header{}
	r.r.Result().SetHeaders(h)
	return h
}

// usage reads the tokens a protocol reported in its audit fields, or -1.
func usage(fields map[string]any) int64 {
	if t := intField(fields, "total_tokens"); t > 0 {
		return t
	}
	p, c := intField(fields, "prompt_tokens"), intField(fields, "completion_tokens")
	if p > 0 || c > 0 {
		return p + c
	}
	return -1
}

func intField(m map[string]any, k string) int64 {
	switch v := m[k].(type) {
	case int:
		return int64(v)
	case int64:
		return v
	case float64:
		return int64(v)
	}
	return 0
}
