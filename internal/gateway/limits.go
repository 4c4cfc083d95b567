package gateway

import (
	"context"
	"net/http"

	"github.com/wardenhq/warden/internal/protocol"
)

// grant is an admitted request's hold on its limits and budgets: it meters
// usage learned from the response and settles at the end.
type grant interface {
	protocol.Meter
	// Settle charges the difference between what was reserved and what the
	// response reported.
	Settle(ctx context.Context)
	// Release returns what was reserved but not used (error paths).
	Release()
	// Headers are the remaining-budget headers for the client.
	Headers() http.Header
}

type limitErr struct {
	err     *protocol.Error
	headers http.Header
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
