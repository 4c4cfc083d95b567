// Package ratelimit enforces request rates and token budgets per SPIFFE ID
// and per SPIFFE ID × model, so one agent cannot exhaust an LLM account
// (issue "LLM endpoint protection" §Limits and budgets).
//
// A request is admitted on an estimate (prompt tokens + requested max
// tokens) by Limiter.Reserve; the returned Reservation is the request's
// protocol.Meter: the response path charges tokens as a stream goes, and
// Settle reconciles to the real usage at the end (or Release refunds when
// the upstream call failed). Request rates use GCRA (a smooth per-minute
// rate with a burst of one minute's worth); token budgets use fixed windows
// (the UTC minute and the UTC day). See docs/limits.md.
//
// Counters live in this process's memory by default, or in Redis
// (RedisStore) so that every Warden replica enforces one budget. When Redis
// fails the limiter fails closed (config.Redis.OnError "deny") or falls back
// to per-replica memory counters ("local"); both are counted in metrics and
// reported in the Result for the audit record.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardenhq/warden/internal/protocol"
)

// Limits are the caps of one scope. A zero field means no cap for it, so
// the zero Limits admits everything.
type Limits struct {
	// RequestsPerMinute caps the request rate (GCRA: one request every
	// minute/N, with a burst of N).
	RequestsPerMinute int64
	// TokensPerMinute caps tokens (prompt + completion) per UTC minute.
	TokensPerMinute int64
	// TokensPerDay caps tokens per UTC day.
	TokensPerDay int64
}

// IsZero reports whether no cap is set, so callers can skip the limiter.
func (l Limits) IsZero() bool { return l == Limits{} }

// Request describes one admission: who is charged, under which caps, and
// how many tokens are expected.
type Request struct {
	// SpiffeID is the caller. Required when any limit is set.
	SpiffeID string
	// Model is the model the request targets; empty when the call has none.
	// PerModel applies only when Model is set.
	Model string
	// PerID caps the identity across all models.
	PerID Limits
	// PerModel caps the identity on this one model.
	PerModel Limits
	// Tokens is the estimate reserved up front: prompt tokens plus the
	// requested maximum completion tokens. Zero for calls without tokens.
	Tokens int64
}

// Degraded values say how a Redis failure was handled.
const (
	// DegradedDeny: Redis failed and the request was denied (fail closed).
	DegradedDeny = "redis_unavailable_deny"
	// DegradedLocal: Redis failed and per-replica memory counters decided.
	DegradedLocal = "redis_unavailable_local"
)

// Result is an admission or settlement outcome, with what the gateway needs
// for a 429, Retry-After and the OpenAI-style x-ratelimit-* headers.
// Remaining and Limit fields are -1 when no cap of that kind applies.
type Result struct {
	// Allowed is false when the request must not be forwarded.
	Allowed bool
	// Code is the protocol reason code when denied: protocol.CodeRateLimited,
	// protocol.CodeBudgetExhausted or protocol.CodeLimiterError.
	Code string
	// RetryAfter is how long to wait before retrying when denied.
	RetryAfter time.Duration

	// LimitRequests and RemainingRequests describe the tightest request-rate
	// cap; ResetRequests is the time until it is fully replenished.
	LimitRequests     int64
	RemainingRequests int64
	ResetRequests     time.Duration
	// LimitTokens and RemainingTokens describe the token window with the
	// least left; ResetTokens is the time until that window resets.
	LimitTokens     int64
	RemainingTokens int64
	ResetTokens     time.Duration

	// Degraded is set when Redis failed: DegradedDeny or DegradedLocal.
	// The gateway puts it in the audit reason.
	Degraded string
	// Err is the store failure behind Degraded (never sent to the client).
	Err error
}

// SetHeaders writes x-ratelimit-* (OpenAI's names) and, when denied,
// Retry-After. Headers of a kind without caps are omitted.
func (r Result) SetHeaders(h http.Header) {
	if r.LimitRequests >= 0 {
		h.Set("X-RateLimit-Limit-Requests", strconv.FormatInt(r.LimitRequests, 10))
		h.Set("X-RateLimit-Remaining-Requests", strconv.FormatInt(max(r.RemainingRequests, 0), 10))
		h.Set("X-RateLimit-Reset-Requests", formatReset(r.ResetRequests))
	}
	if r.LimitTokens >= 0 {
		h.Set("X-RateLimit-Limit-Tokens", strconv.FormatInt(r.LimitTokens, 10))
		h.Set("X-RateLimit-Remaining-Tokens", strconv.FormatInt(max(r.RemainingTokens, 0), 10))
		h.Set("X-RateLimit-Reset-Tokens", formatReset(r.ResetTokens))
	}
	if !r.Allowed {
		secs := int64(math.Ceil(r.RetryAfter.Seconds()))
		h.Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	}
}

// formatReset renders a duration as OpenAI does ("1s", "6m0s", "20ms"),
// rounded up to milliseconds so a client never retries early.
func formatReset(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	if r := d % time.Millisecond; r != 0 {
		d += time.Millisecond - r
	}
	return d.String()
}

// Denial is the error to answer a denied Result with: 429 for limits and
// budgets, 503 when the limiter could not decide (fail closed). It is nil
// when the Result is allowed.
func (r Result) Denial() *protocol.Error {
	if r.Allowed {
		return nil
	}
	switch r.Code {
	case protocol.CodeBudgetExhausted:
		return &protocol.Error{Status: http.StatusTooManyRequests, Code: r.Code, Message: "token budget exhausted", Err: ErrBudgetExhausted}
	case protocol.CodeLimiterError:
		return &protocol.Error{Status: http.StatusServiceUnavailable, Code: r.Code, Message: "rate limiter unavailable", Err: r.Err}
	default:
		return &protocol.Error{Status: http.StatusTooManyRequests, Code: protocol.CodeRateLimited, Message: "rate limit exceeded", Err: ErrRateLimited}
	}
}

// store is one place counters live: memory or Redis. Both implement the
// same atomic semantics (see docs/limits.md) so the shared test suite runs
// against each.
type store interface {
	// admit atomically checks every counter and, only if all allow, takes
	// one request from each rate counter and tokens from each window
	// counter. out[i] receives counter i's state.
	admit(ctx context.Context, nowUS int64, cs []counter, tokens int64, out []state) (bool, error)
	// add adds delta (negative refunds, floored at zero) to window counters
	// without checking caps; out[i] receives counter i's state after.
	add(ctx context.Context, nowUS int64, cs []counter, delta int64, out []state) error
}

// kind is a counter kind; the values are part of the Redis key layout.
type kind uint8

const (
	kindRate      kind = iota // GCRA, per minute
	kindTokMinute             // fixed window, UTC minute
	kindTokDay                // fixed window, UTC day
)

const (
	minuteUS = int64(time.Minute / time.Microsecond)
	dayUS    = int64(24 * time.Hour / time.Microsecond)
)

// counter is one cap applied to one scope.
type counter struct {
	kind  kind
	id    string
	model string // "" = identity scope
	limit int64
	win   int64 // window index (window counters); 0 for rate
}

// period is the counter's window (or GCRA period) in microseconds.
func (c counter) period() int64 {
	if c.kind == kindTokDay {
		return dayUS
	}
	return minuteUS
}

// windowEnd is when window counter c resets, in Unix microseconds.
func (c counter) windowEnd() int64 { return (c.win + 1) * c.period() }

// state is a counter's answer: whether it denied, what remains (may be
// negative after overspending), and for rate counters the GCRA distance
// (TAT - now): the time until fully replenished, or when denied the wait
// plus one period.
type state struct {
	denied    bool
	remaining int64
	tatDiff   int64
}

// maxCounters is 2 scopes × 3 caps.
const maxCounters = 6

// Options configure a Limiter.
type Options struct {
	// Redis shares counters across replicas; nil keeps them in this
	// process's memory. What happens when Redis fails follows the store's
	// config.Redis.OnError.
	Redis *RedisStore
	// Log receives store failures; nil discards.
	Log *slog.Logger
	// Now is the clock; nil means time.Now. Windows are computed from it
	// and passed to Redis, so replicas' clocks should be NTP-synchronized.
	Now func() time.Time
	// Registerer receives the limiter's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Shards is the number of memory-store shards. Default 64.
	Shards int
}

// Limiter admits requests and meters their tokens. It is safe for
// concurrent use.
type Limiter struct {
	primary  store
	fallback *memStore // per-replica counters for OnError "local"
	local    bool      // OnError is "local"
	isRedis  bool
	log      *slog.Logger
	now      func() time.Time
	metrics  *metrics
	// Circuit breaker: after breakerFailures consecutive failures Redis is
	// skipped until downUntil (Unix µs), so an outage costs a timeout per
	// second, not one per request; one slow reply does not trip it.
	fails     atomic.Int32
	downUntil atomic.Int64
	down      atomic.Bool // an outage is being logged
}

const (
	// breakerFailures consecutive failures open the breaker.
	breakerFailures = 3
	// breakerUS is how long Redis is skipped once the breaker is open;
	// then one request probes it.
	breakerUS = int64(time.Second / time.Microsecond)
)

// skipStore reports whether the breaker is open.
func (l *Limiter) skipStore(nowUS int64) bool {
	return l.isRedis && nowUS < l.downUntil.Load()
}

// storeOK closes the breaker after a successful call.
func (l *Limiter) storeOK() {
	if l.fails.Load() != 0 { // read first: no shared write on the hot path
		l.fails.Store(0)
	}
	if l.down.Load() && l.down.Swap(false) {
		l.log.Info("ratelimit: store reachable again")
	}
}

// New builds a Limiter. It fails only when metrics cannot be registered.
func New(opts Options) (*Limiter, error) {
	l := &Limiter{
		log: opts.Log,
		now: opts.Now,
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.now == nil {
		l.now = time.Now
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	l.metrics = m
	mem := newMemStore(opts.Shards)
	if opts.Redis != nil {
		l.primary = opts.Redis
		l.isRedis = true
		l.local = opts.Redis.onError == "local"
		l.fallback = mem
	} else {
		l.primary = mem
	}
	return l, nil
}

// counters flattens a Request into the counters it touches.
func (r *Request) counters(nowUS int64, dst *[maxCounters]counter) int {
	n := 0
	addScope := func(model string, lim Limits) {
		if lim.RequestsPerMinute > 0 {
			dst[n] = counter{kind: kindRate, id: r.SpiffeID, model: model, limit: lim.RequestsPerMinute}
			n++
		}
		if lim.TokensPerMinute > 0 {
			dst[n] = counter{kind: kindTokMinute, id: r.SpiffeID, model: model, limit: lim.TokensPerMinute, win: nowUS / minuteUS}
			n++
		}
		if lim.TokensPerDay > 0 {
			dst[n] = counter{kind: kindTokDay, id: r.SpiffeID, model: model, limit: lim.TokensPerDay, win: nowUS / dayUS}
			n++
		}
	}
	addScope("", r.PerID)
	if r.Model != "" {
		addScope(r.Model, r.PerModel)
	}
	return n
}

// Reserve admits req or refuses it. When allowed, the Reservation holds
// req.Tokens and must end with Settle or Release; when refused it is nil.
// A store failure denies with protocol.CodeLimiterError, or is decided by
// per-replica memory counters when OnError is "local"; either way
// Result.Degraded says so.
func (l *Limiter) Reserve(ctx context.Context, req Request) (*Reservation, Result) {
	now := l.now()
	nowUS := now.UnixMicro()
	res := &Reservation{l: l, reserved: max(req.Tokens, 0)}
	res.n = req.counters(nowUS, &res.cs)
	if res.n > 0 && req.SpiffeID == "" {
		// Counting an anonymous caller under "" would merge strangers into
		// one budget; the gateway must not get here without an identity.
		return nil, Result{Code: protocol.CodeLimiterError, Err: ErrNoIdentity, LimitRequests: -1, LimitTokens: -1, RemainingRequests: -1, RemainingTokens: -1}
	}
	cs, out := res.cs[:res.n], res.st[:res.n]
	res.store = l.primary
	var (
		ok       bool
		err      error
		degraded string
		storeErr error
	)
	if res.n > 0 {
		if l.skipStore(nowUS) {
			err = ErrStoreDown
		} else if ok, err = l.primary.admit(ctx, nowUS, cs, res.reserved, out); err == nil {
			l.storeOK()
		}
		if err != nil && ctx.Err() != nil {
			// The caller went away (or its deadline passed) mid-call: not
			// a store failure, so neither counted nor tripping the breaker.
			return nil, Result{Code: protocol.CodeLimiterError, Err: fmt.Errorf("ratelimit: admit: %w", ctx.Err()),
				LimitRequests: -1, RemainingRequests: -1, LimitTokens: -1, RemainingTokens: -1}
		}
		if err != nil {
			l.storeFailed("admit", nowUS, err)
			if !l.local {
				l.metrics.decided("error")
				// No remaining-budget headers: nothing is known about them.
				return nil, Result{Code: protocol.CodeLimiterError, RetryAfter: time.Second,
					Degraded: DegradedDeny, Err: err,
					LimitRequests: -1, RemainingRequests: -1, LimitTokens: -1, RemainingTokens: -1}
			}
			l.metrics.fallback.WithLabelValues("admit").Inc()
			degraded, storeErr = DegradedLocal, err
			res.store = l.fallback
			ok, err = l.fallback.admit(ctx, nowUS, cs, res.reserved, out)
			if err != nil { // memory never fails; keep the contract anyway
				return nil, Result{Code: protocol.CodeLimiterError, Err: err, Degraded: DegradedDeny}
			}
		}
	} else {
		ok = true
	}
	r := summarize(nowUS, cs, out, ok)
	r.Degraded, r.Err = degraded, storeErr
	if !ok {
		l.metrics.decided(r.Code)
		return nil, r
	}
	l.metrics.allowed.Inc()
	res.result = r
	return res, r
}

// storeFailed counts a store failure, opens the breaker after
// breakerFailures in a row, and logs the first failure of an outage.
func (l *Limiter) storeFailed(op string, nowUS int64, err error) {
	l.metrics.errors.WithLabelValues(op).Inc()
	if errors.Is(err, ErrStoreDown) {
		return // breaker open: counted, not tried, not logged again
	}
	if l.fails.Add(1) >= breakerFailures {
		l.downUntil.Store(nowUS + breakerUS)
	}
	if l.down.Swap(true) {
		return
	}
	mode := "deny"
	if l.local {
		mode = "local"
	}
	l.log.Warn("ratelimit: store failed", "op", op, "on_error", mode, "error", err)
}

// summarize turns counter states into a Result.
func summarize(nowUS int64, cs []counter, out []state, ok bool) Result {
	r := Result{Allowed: ok, LimitRequests: -1, RemainingRequests: -1, LimitTokens: -1, RemainingTokens: -1}
	var retryUS int64
	rateDenied, tokDenied := false, false
	for i, c := range cs {
		s := out[i]
		if c.kind == kindRate {
			if r.LimitRequests < 0 || s.remaining < r.RemainingRequests {
				r.LimitRequests, r.RemainingRequests = c.limit, s.remaining
				r.ResetRequests = time.Duration(max(s.tatDiff, 0)) * time.Microsecond
			}
			if s.denied {
				rateDenied = true
				retryUS = max(retryUS, s.tatDiff-minuteUS)
			}
			continue
		}
		reset := c.windowEnd() - nowUS
		if r.LimitTokens < 0 || s.remaining < r.RemainingTokens {
			r.LimitTokens, r.RemainingTokens = c.limit, s.remaining
			r.ResetTokens = time.Duration(reset) * time.Microsecond
		}
		if s.denied {
			tokDenied = true
			retryUS = max(retryUS, reset)
		}
	}
	if !ok {
		r.RetryAfter = time.Duration(retryUS) * time.Microsecond
		switch {
		case tokDenied:
			// The longer-lasting reason: waiting out the rate alone won't help.
			r.Code = protocol.CodeBudgetExhausted
		case rateDenied:
			r.Code = protocol.CodeRateLimited
		default:
			r.Code = protocol.CodeRateLimited
		}
	}
	return r
}

func (k kind) String() string {
	switch k {
	case kindRate:
		return "rpm"
	case kindTokMinute:
		return "tpm"
	case kindTokDay:
		return "tpd"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}
