package ratelimit

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/wardenhq/warden/internal/protocol"
)

// Reservation is one admitted request's hold on its budgets. It is the
// request's protocol.Meter: the response path charges tokens as they are
// learned; Settle reconciles to the real usage once known; Release gives
// back what was not used when the request failed. It is safe for concurrent
// use.
//
// Accounting: Reserve took Reserved() tokens. Charges up to that amount are
// already paid for; beyond it each charge is added to the current windows,
// and once a window is overspent Charge returns an error so the exchange
// ends the stream. Settle(actual) refunds (to the windows of the
// admission) or charges (to the current windows) the difference between
// actual and what was taken. The request-rate slot is never refunded: a
// failed attempt still counts, which also damps retry storms.
type Reservation struct {
	l      *Limiter
	store  store
	result Result

	mu       sync.Mutex
	n        int
	cs       [maxCounters]counter
	st       [maxCounters]state
	scratch  [maxCounters]counter
	reserved int64 // tokens taken at admission
	charged  int64 // tokens reported through Charge
	over     int64 // tokens added beyond reserved
	done     bool
}

var _ protocol.Meter = (*Reservation)(nil)

// Result is the admission Result (for the response headers).
func (r *Reservation) Result() Result { return r.result }

// Reserved is the number of tokens taken at admission.
func (r *Reservation) Reserved() int64 { return r.reserved }

// Charged is the number of tokens reported through Charge so far, for the
// audit record.
func (r *Reservation) Charged() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.charged
}

// Charge implements protocol.Meter. It records units more tokens; an error
// (a *protocol.Error: 429 budget_exhausted, or 503 limiter_unavailable when
// the store failed and OnError is "deny") means stop the stream. Tokens are
// recorded even when the budget is overspent: they were consumed upstream.
func (r *Reservation) Charge(ctx context.Context, units int64) error {
	if units <= 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return fmt.Errorf("ratelimit: charge %d: %w", units, ErrSettled)
	}
	r.charged += units
	excess := r.charged - r.reserved - r.over
	if excess <= 0 {
		return nil
	}
	r.over += excess
	out, err := r.addLocked(ctx, false, excess)
	if err != nil {
		return &protocol.Error{Status: http.StatusServiceUnavailable, Code: protocol.CodeLimiterError, Message: "rate limiter unavailable", Err: err}
	}
	for _, s := range out {
		if s.remaining < 0 {
			return &protocol.Error{Status: http.StatusTooManyRequests, Code: protocol.CodeBudgetExhausted, Message: "token budget exhausted", Err: ErrBudgetExhausted}
		}
	}
	return nil
}

// Settle reconciles the reservation to actual, the request's real token
// usage (from the upstream's usage report, or Charged() when there was
// none): it refunds or charges the difference. A Reservation settles once;
// later calls return ErrSettled. Settle is not cancelled with ctx: a refund
// must not be lost because the client went away. (It returns no budget
// figures: by then the response headers are sent, and a refund may land in
// a window that is no longer current.)
func (r *Reservation) Settle(ctx context.Context, actual int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return fmt.Errorf("ratelimit: settle: %w", ErrSettled)
	}
	r.done = true
	return r.settleLocked(ctx, max(actual, 0))
}

// Release ends a reservation whose request failed: it refunds every
// reserved token not reported through Charge. It is a no-op on a nil or
// already settled Reservation, so `defer res.Release(ctx)` is safe next to
// an explicit Settle.
func (r *Reservation) Release(ctx context.Context) error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return nil
	}
	r.done = true
	return r.settleLocked(ctx, r.charged)
}

func (r *Reservation) settleLocked(ctx context.Context, actual int64) error {
	delta := actual - r.reserved - r.over
	if delta == 0 {
		return nil
	}
	// Refunds go back to the windows they were taken from; extra usage
	// lands in the windows current now.
	if _, err := r.addLocked(ctx, delta < 0, delta); err != nil {
		return fmt.Errorf("ratelimit: settle %+d tokens: %w", delta, err)
	}
	return nil
}

// addLocked adds delta tokens to the reservation's window counters, at the
// admission windows or the current ones. A store failure falls back to
// memory counters when OnError is "local"; otherwise it is returned.
func (r *Reservation) addLocked(ctx context.Context, atAdmission bool, delta int64) ([]state, error) {
	nowUS := r.l.now().UnixMicro()
	m := 0
	for _, c := range r.cs[:r.n] {
		if c.kind == kindRate {
			continue
		}
		if !atAdmission {
			c.win = nowUS / c.period()
		}
		r.scratch[m] = c
		m++
	}
	if m == 0 {
		return nil, nil
	}
	cs, out := r.scratch[:m], r.st[:m]
	st := r.store
	var err error
	onPrimary := st == r.l.primary
	if onPrimary && r.l.skipStore(nowUS) {
		err = ErrStoreDown
	} else {
		err = st.add(ctx, nowUS, cs, delta, out)
	}
	if err == nil {
		if onPrimary {
			r.l.storeOK()
		}
		return out, nil
	}
	r.l.storeFailed("add", nowUS, err)
	if !r.l.local || !onPrimary {
		return nil, err
	}
	r.l.metrics.fallback.WithLabelValues("add").Inc()
	if err := r.l.fallback.add(ctx, nowUS, cs, delta, out); err != nil {
		return nil, err
	}
	return out, nil
}
