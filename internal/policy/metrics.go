package policy

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the engine's Prometheus collectors.
type metrics struct {
	reloads   *prometheus.CounterVec
	eval      prometheus.Histogram
	decisions *prometheus.CounterVec
	// allow, deny and errs are decisions' children, resolved once.
	allow, deny, errs prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_policy_reloads_total",
			Help: "Policy reloads (file change, SIGHUP) by result: success or failure. A failure keeps the last good version serving.",
		}, []string{"result"}),
		eval: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "warden_policy_eval_seconds",
			Help:    "Time to evaluate one policy query (a decision, or one caller's grants in a batch).",
			Buckets: []float64{5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 2.5e-2, 0.1, 0.25},
		}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_policy_decisions_total",
			Help: "Policy decisions by outcome: allow, deny, or error (an evaluation failure, which also denies).",
		}, []string{"decision"}),
	}
	for _, l := range []string{"success", "failure"} {
		m.reloads.WithLabelValues(l)
	}
	for _, l := range []string{"allow", "deny", "error"} {
		m.decisions.WithLabelValues(l)
	}
	if reg == nil {
		m.allow, m.deny, m.errs = m.decisions.WithLabelValues("allow"), m.decisions.WithLabelValues("deny"), m.decisions.WithLabelValues("error")
		return m, nil
	}
	var err error
	if m.reloads, err = register(reg, m.reloads); err != nil {
		return nil, err
	}
	if m.eval, err = register(reg, m.eval); err != nil {
		return nil, err
	}
	if m.decisions, err = register(reg, m.decisions); err != nil {
		return nil, err
	}
	m.allow, m.deny, m.errs = m.decisions.WithLabelValues("allow"), m.decisions.WithLabelValues("deny"), m.decisions.WithLabelValues("error")
	return m, nil
}

// register registers c, or returns the collector already registered under
// its name, so an engine rebuilt in the same process keeps counting.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("policy: register metrics: %w", err)
	}
	return c, nil
}
