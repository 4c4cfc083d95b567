package ratelimit

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the limiter's Prometheus series. Store failures are counted
// apart from decisions so an alert can fire on a degraded Redis before
// anyone is denied.
type metrics struct {
	// errors counts failed store calls by op (admit, add).
	errors *prometheus.CounterVec
	// fallback counts operations decided by per-replica memory counters
	// because Redis failed (OnError "local").
	fallback *prometheus.CounterVec
	// decisions counts admissions by result (allowed, rate_limited,
	// budget_exhausted, error).
	decisions *prometheus.CounterVec
	// allowed is decisions{result="allowed"}, resolved once: the hot path
	// must not hash label values.
	allowed prometheus.Counter
}

func (m *metrics) decided(result string) { m.decisions.WithLabelValues(result).Inc() }

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_limiter_errors_total",
			Help: "Limiter store (Redis) operations that failed or timed out.",
		}, []string{"op"}),
		fallback: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_limiter_fallback_total",
			Help: "Limiter operations decided by per-replica memory counters because Redis failed (on_error: local).",
		}, []string{"op"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_limiter_decisions_total",
			Help: "Limiter admissions by result.",
		}, []string{"result"}),
	}
	if reg == nil {
		m.allowed = m.decisions.WithLabelValues("allowed")
		return m, nil
	}
	for _, c := range []**prometheus.CounterVec{&m.errors, &m.fallback, &m.decisions} {
		if err := reg.Register(*c); err != nil {
			// A second Limiter on one registry (a config reload) adds to the
			// series already exported instead of failing.
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("ratelimit: register metrics: %w", err)
			}
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return nil, fmt.Errorf("ratelimit: register metrics: %w", err)
			}
			*c = existing
		}
	}
	m.allowed = m.decisions.WithLabelValues("allowed")
	return m, nil
}
