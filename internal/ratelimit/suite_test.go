package ratelimit

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wardenhq/warden/internal/protocol"
)

// clock is an injected clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

// newClock starts at 10:00:00 UTC on a fixed day, so minute and day windows
// start exactly there.
func newClock() *clock {
	return &clock{t: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newLimiterFunc builds a fresh, empty limiter on the given clock.
type newLimiterFunc func(t *testing.T, now func() time.Time) *Limiter

const alice = "spiffe://warden.test/agent/alice"

// runSuite is the behaviour every store must have; memory_test.go and
// redis_test.go run it against each store.
func runSuite(t *testing.T, newLimiter newLimiterFunc) {
	ctx := context.Background()

	t.Run("request rate GCRA", func(t *testing.T) {
		clk := newClock()
		l := newLimiter(t, clk.Now)
		req := Request{SpiffeID: alice, PerID: Limits{RequestsPerMinute: 3}}
		for i := range 3 {
			_, r := l.Reserve(ctx, req)
			if !r.Allowed {
				t.Fatalf("request %d denied: %+v", i+1, r)
			}
			if want := int64(2 - i); r.RemainingRequests != want {
				t.Errorf("request %d: RemainingRequests = %d, want %d", i+1, r.RemainingRequests, want)
			}
		}
		res, r := l.Reserve(ctx, req)
		if r.Allowed || res != nil {
			t.Fatalf("4th request allowed: %+v", r)
		}
		if r.Code != protocol.CodeRateLimited || r.RetryAfter != 20*time.Second {
			t.Errorf("denied with Code %q RetryAfter %v, want %q 20s", r.Code, r.RetryAfter, protocol.CodeRateLimited)
		}
		clk.Advance(19 * time.Second)
		if _, r := l.Reserve(ctx, req); r.Allowed {
			t.Fatalf("allowed 1s before the slot frees")
		}
		clk.Advance(time.Second)
		if _, r := l.Reserve(ctx, req); !r.Allowed {
			t.Fatalf("denied after the emission interval: %+v", r)
		}
	})

	t.Run("tokens per minute fixed window", func(t *testing.T) {
		clk := newClock()
		clk.Advance(15 * time.Second)
		l := newLimiter(t, clk.Now)
		req := Request{SpiffeID: alice, PerID: Limits{TokensPerMinute: 100}, Tokens: 60}
		if _, r := l.Reserve(ctx, req); !r.Allowed || r.RemainingTokens != 40 || r.LimitTokens != 100 {
			t.Fatalf("first reservation: %+v", r)
		}
		req.Tokens = 50
		_, r := l.Reserve(ctx, req)
		if r.Allowed || r.Code != protocol.CodeBudgetExhausted {
			t.Fatalf("over budget: %+v, want denied %s", r, protocol.CodeBudgetExhausted)
		}
		if r.RetryAfter != 45*time.Second || r.RemainingTokens != 40 {
			t.Errorf("RetryAfter %v RemainingTokens %d, want 45s (window end) and 40", r.RetryAfter, r.RemainingTokens)
		}
		clk.Advance(45 * time.Second)
		if _, r := l.Reserve(ctx, req); !r.Allowed || r.RemainingTokens != 50 {
			t.Fatalf("next minute: %+v", r)
		}
	})

	t.Run("tokens per day fixed window", func(t *testing.T) {
		clk := newClock()
		l := newLimiter(t, clk.Now)
		req := Request{SpiffeID: alice, PerID: Limits{TokensPerDay: 100}, Tokens: 60}
		if _, r := l.Reserve(ctx, req); !r.Allowed {
			t.Fatalf("first: %+v", r)
		}
		clk.Advance(3 * time.Hour)
		_, r := l.Reserve(ctx, req)
		if r.Allowed || r.Code != protocol.CodeBudgetExhausted {
			t.Fatalf("same day: %+v", r)
		}
		if r.RetryAfter != 11*time.Hour { // 13:00 → midnight UTC
			t.Errorf("RetryAfter = %v, want 11h", r.RetryAfter)
		}
		clk.Advance(11 * time.Hour)
		if _, r := l.Reserve(ctx, req); !r.Allowed {
			t.Fatalf("next day: %+v", r)
		}
	})

	t.Run("per model and per identity scopes", func(t *testing.T) {
		clk := newClock()
		l := newLimiter(t, clk.Now)
		mk := func(model string, tokens int64) Request {
			return Request{SpiffeID: alice, Model: model, Tokens: tokens,
				PerID: Limits{TokensPerMinute: 100}, PerModel: Limits{TokensPerMinute: 50}}
		}
		steps := []struct {
			req  Request
			want bool
		}{
			{mk("gpt-a", 40), true},
			{mk("gpt-a", 20), false}, // model cap 50
			{mk("gpt-b", 50), true},  // other model has its own cap
			{mk("gpt-c", 20), false}, // identity cap 100 (40+50 used)
			{mk("gpt-c", 10), true},
			{Request{SpiffeID: "spiffe://warden.test/agent/bob", Model: "gpt-a", Tokens: 50, PerModel: Limits{TokensPerMinute: 50}}, true},
		}
		for i, s := range steps {
			if _, r := l.Reserve(ctx, s.req); r.Allowed != s.want {
				t.Errorf("step %d (%s, %d tokens): Allowed = %v, want %v (%+v)", i, s.req.Model, s.req.Tokens, r.Allowed, s.want, r)
			}
		}
	})

	t.Run("admission is all or nothing", func(t *testing.T) {
		clk := newClock()
		l := newLimiter(t, clk.Now)
		big := Request{SpiffeID: alice, PerID: Limits{RequestsPerMinute: 5, TokensPerMinute: 100}, Tokens: 500}
		if _, r := l.Reserve(ctx, big); r.Allowed {
			t.Fatalf("500 tokens admitted under a 100 cap")
		}
		small := big
		small.Tokens = 1
		for i := range 5 {
			if _, r := l.Reserve(ctx, small); !r.Allowed {
				t.Fatalf("request %d denied: the refused one took a rate slot: %+v", i+1, r)
			}
		}
	})

	t.Run("no limits admits without a store", func(t *testing.T) {
		l := newLimiter(t, newClock().Now)
		res, r := l.Reserve(ctx, Request{SpiffeID: alice, Tokens: 1 << 40})
		if !r.Allowed || res == nil {
			t.Fatalf("denied without limits: %+v", r)
		}
		h := http.Header{}
		r.SetHeaders(h)
		if len(h) != 0 {
			t.Errorf("headers without limits: %v", h)
		}
		if err := res.Charge(ctx, 1000); err != nil {
			t.Errorf("Charge without limits: %v", err)
		}
		if err := res.Settle(ctx, 5000); err != nil {
			t.Errorf("Settle without limits: %v", err)
		}
	})

	t.Run("settle refunds and charges the difference", func(t *testing.T) {
		clk := newClock()
		l := newLimiter(t, clk.Now)
		lim := Limits{TokensPerMinute: 100, TokensPerDay: 1000}
		res, r := l.Reserve(ctx, Request{SpiffeID: alice, PerID: lim, Tokens: 80})
		if !r.Allowed {
			t.Fatalf("denied: %+v", r)
		}
		if err := res.Settle(ctx, 30); err != nil {
			t.Fatal(err)
		}
		if got := remainingTokens(t, l, lim); got != 70 {
			t.Errorf("after refund RemainingTokens = %d, want 70", got)
		}
		if err := res.Settle(ctx, 30); !errors.Is(err, ErrSettled) {
			t.Errorf("second Settle: %v, want ErrSettled", err)
		}
		res2, r := l.Reserve(ctx, Request{SpiffeID: alice, PerID: lim, Tokens: 10})
		if !r.Allowed {
			t.Fatalf("denied after refund: %+v", r)
		}
		if err := res2.Settle(ctx, 50); err != nil {
			t.Fatal(err)
		}
		if got := remainingTokens(t, l, lim); got != 20 { // 100 - 30 - 50
			t.Errorf("after extra charge RemainingTokens = %d, want 20", got)
		}
	})

	t.Run("mid-stream charges stop past the budget", func(t *testing.T) {
		clk := newClock()
		l := newLimiter(t, clk.Now)
		res, r := l.Reserve(ctx, Request{SpiffeID: alice, PerID: Limits{TokensPerMinute: 100}, Tokens: 10})
		if !r.Allowed {
			t.Fatalf("denied: %+v", r)
		}
		var m protocol.Meter = res
		if err := m.Charge(ctx, 5); err != nil {
			t.Fatalf("charge within the reservation: %v", err)
		}
		if err := m.Charge(ctx, 50); err != nil {
			t.Fatalf("charge within the budget: %v", err)
		}
		if err := m.Charge(ctx, 45); err != nil {
			t.Fatalf("charge reaching the budget exactly: %v", err)
		}
		err := m.Charge(ctx, 1)
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Status != http.StatusTooManyRequests || pe.Code != protocol.CodeBudgetExhausted || !errors.Is(err, ErrBudgetExhausted) {
			t.Fatalf("charge past the budget: %v, want 429 %s", err, protocol.CodeBudgetExhausted)
		}
		if got := res.Charged(); got != 101 {
			t.Errorf("Charged = %d, want 101", got)
		}
		// Nothing more can be admitted this minute, not even zero tokens.
		if _, r := l.Reserve(ctx, Request{SpiffeID: alice, PerID: Limits{TokensPerMinute: 100}}); r.Allowed {
			t.Errorf("admitted on an overspent budget: %+v", r)
		}
		if err := res.Settle(ctx, res.Charged()); err != nil {
			t.Errorf("Settle: %v", err)
		}
		if err := m.Charge(ctx, 1); !errors.Is(err, ErrSettled) {
			t.Errorf("Charge after Settle: %v, want ErrSettled", err)
		}
	})

	t.Run("release refunds what was not charged", func(t *testing.T) {
		clk := newClock()
		l := newLimiter(t, clk.Now)
		lim := Limits{TokensPerMinute: 100}
		res, r := l.Reserve(ctx, Request{SpiffeID: alice, PerID: lim, Tokens: 60})
		if !r.Allowed {
			t.Fatalf("denied: %+v", r)
		}
		if err := res.Charge(ctx, 20); err != nil {
			t.Fatal(err)
		}
		if err := res.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := res.Release(ctx); err != nil {
			t.Errorf("second Release: %v", err)
		}
		if err := (*Reservation)(nil).Release(ctx); err != nil {
			t.Errorf("nil Release: %v", err)
		}
		if _, r := l.Reserve(ctx, Request{SpiffeID: alice, PerID: lim, Tokens: 80}); !r.Allowed {
			t.Errorf("80 tokens denied after release left 20 used: %+v", r)
		}
	})

	t.Run("refund after rollover goes to the old window", func(t *testing.T) {
		clk := newClock()
		l := newLimiter(t, clk.Now)
		lim := Limits{TokensPerMinute: 100}
		old, r := l.Reserve(ctx, Request{SpiffeID: alice, PerID: lim, Tokens: 80})
		if !r.Allowed {
			t.Fatal("denied")
		}
		clk.Advance(time.Minute)
		if _, r := l.Reserve(ctx, Request{SpiffeID: alice, PerID: lim, Tokens: 80}); !r.Allowed {
			t.Fatalf("new window denied: %+v", r)
		}
		if err := old.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if _, r := l.Reserve(ctx, Request{SpiffeID: alice, PerID: lim, Tokens: 30}); r.Allowed {
			t.Errorf("the old window's refund credited the new window: %+v", r)
		}
	})

	t.Run("concurrent reservations never exceed the budget", func(t *testing.T) {
		clk := newClock()
		l := newLimiter(t, clk.Now)
		req := Request{SpiffeID: alice, Model: "m", PerID: Limits{TokensPerMinute: 100}, PerModel: Limits{RequestsPerMinute: 1000}, Tokens: 1}
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 25 {
					if _, r := l.Reserve(ctx, req); r.Allowed {
						allowed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if got := allowed.Load(); got != 100 {
			t.Errorf("%d of 200 admitted under a 100-token budget, want exactly 100", got)
		}
	})

	t.Run("headers", func(t *testing.T) {
		clk := newClock()
		clk.Advance(30 * time.Second)
		l := newLimiter(t, clk.Now)
		req := Request{SpiffeID: alice, PerID: Limits{RequestsPerMinute: 60, TokensPerMinute: 1000, TokensPerDay: 500}, Tokens: 100}
		_, r := l.Reserve(ctx, req)
		h := http.Header{}
		r.SetHeaders(h)
		want := http.Header{
			"X-Ratelimit-Limit-Requests":     {"60"},
			"X-Ratelimit-Remaining-Requests": {"59"},
			"X-Ratelimit-Reset-Requests":     {"1s"},
			// The day window (500) has less left than the minute (1000).
			"X-Ratelimit-Limit-Tokens":     {"500"},
			"X-Ratelimit-Remaining-Tokens": {"400"},
			"X-Ratelimit-Reset-Tokens":     {"13h59m30s"},
		}
		if d := cmp.Diff(want, h); d != "" {
			t.Errorf("headers (-want +got):\n%s", d)
		}
		req.Tokens = 1000
		_, r = l.Reserve(ctx, req)
		h = http.Header{}
		r.SetHeaders(h)
		if got := h.Get("Retry-After"); got != "50370" {
			t.Errorf("Retry-After = %q, want 50370 (seconds to midnight UTC)", got)
		}
		if e := r.Denial(); e == nil || e.Status != http.StatusTooManyRequests || e.Code != protocol.CodeBudgetExhausted {
			t.Errorf("Denial() = %v, want 429 %s", e, protocol.CodeBudgetExhausted)
		}
	})
}

// remainingTokens asks for 0 tokens under token-only limits, which takes
// nothing, and returns what is left.
func remainingTokens(t *testing.T, l *Limiter, lim Limits) int64 {
	t.Helper()
	if lim.RequestsPerMinute != 0 {
		t.Fatal("remainingTokens would take a request slot")
	}
	_, r := l.Reserve(context.Background(), Request{SpiffeID: alice, PerID: lim})
	return r.RemainingTokens
}

// counterValue reads one series of a counter vector.
func counterValue(t *testing.T, cv *prometheus.CounterVec, label string) float64 {
	t.Helper()
	var m dto.Metric
	if err := cv.WithLabelValues(label).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestReserveEdgeCases(t *testing.T) {
	l := newMemoryLimiter(t, newClock().Now)
	_, r := l.Reserve(context.Background(), Request{PerID: Limits{RequestsPerMinute: 1}})
	if r.Allowed || !errors.Is(r.Err, ErrNoIdentity) {
		t.Errorf("limited request without an identity: %+v, want denied with ErrNoIdentity", r)
	}
	if res, r := l.Reserve(context.Background(), Request{SpiffeID: alice, PerID: Limits{TokensPerDay: 10}, Tokens: -5}); !r.Allowed || res.Reserved() != 0 {
		t.Errorf("negative estimate: %+v, reserved %d; want allowed, 0 reserved", r, res.Reserved())
	}
}
