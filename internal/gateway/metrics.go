package gateway

import (
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's own series; policy, audit, identity and limits
// register theirs on the same registry.
type metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	decision     *prometheus.HistogramVec
	authFailures *prometheus.CounterVec
	revoked      *prometheus.CounterVec
	killed       *prometheus.CounterVec
	upstream     *prometheus.CounterVec
	inflight     prometheus.Gauge
	tokens       *prometheus.CounterVec
	limited      *prometheus.CounterVec
	cutoffs      *prometheus.CounterVec
	guardFinds   *prometheus.CounterVec
	guardActions *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_requests_total",
			Help: "Data-plane requests by listener, route, decision and HTTP status.",
		}, []string{"listener", "route", "decision", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "warden_request_duration_seconds",
			Help:    "Time from request headers to the end of the response body, by listener and route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"listener", "route"}),
		decision: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "warden_decision_duration_seconds",
			Help:    "Time spent by Warden before forwarding (auth, parse, policy, limits, audit), by route.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1},
		}, []string{"route"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_auth_failures_total",
			Help: "Requests refused before policy because the caller could not be authenticated, by listener and reason.",
		}, []string{"listener", "reason"}),
		revoked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_revocations_total",
			Help: "Revocation changes applied by this replica (revoke or unrevoke).",
		}, []string{"change"}),
		killed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_killed_total",
			Help: "In-flight requests and connections ended by the kill switch.",
		}, []string{"what"}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_upstream_errors_total",
			Help: "Upstream failures by backend and code.",
		}, []string{"backend", "code"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "warden_requests_in_flight",
			Help: "Data-plane requests being served.",
		}),
	}
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "warden_llm_tokens_total",
		Help: "LLM tokens by verified identity, model and kind (prompt, completion), from the upstream's usage report or Warden's estimate.",
	}, []string{"spiffe_id", "model", "kind"})
	m.limited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "warden_limit_rejections_total",
		Help: "Requests refused by rate limits or token budgets, by code (rate_limited, budget_exhausted, limiter_unavailable).",
	}, []string{"code"})
	m.cutoffs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "warden_stream_cutoffs_total",
		Help: "Streams Warden ended early, by reason (budget_exhausted, max_stream_bytes, ...).",
	}, []string{"reason"})
	m.guardFinds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "warden_guard_findings_total",
		Help: "Guard detector findings by phase (request: the body scanned before policy; response: what came back) and category (prompt_injection, secret, pii). Response-side streams count rule hits.",
	}, []string{"phase", "category"})
	m.guardActions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "warden_guard_actions_total",
		Help: "What the guard verdicts led to, by phase and action: blocked (request refused), redacted (prompt or output rewritten), withheld (tool result, point), hidden (list item), dropped (server request), flagged (allowed by policy), over_budget.",
	}, []string{"phase", "action"})
	reg.MustRegister(m.requests, m.duration, m.decision, m.authFailures, m.revoked, m.killed, m.upstream, m.inflight, m.tokens, m.limited, m.cutoffs, m.guardFinds, m.guardActions)
	return m
}

// statusLabel avoids allocating for the common statuses.
func statusLabel(s int) string {
	switch s {
	case 200:
		return "200"
	case 401:
		return "401"
	case 403:
		return "403"
	case 404:
		return "404"
	case 429:
		return "429"
	case 502:
		return "502"
	case 503:
		return "503"
	}
	return strconv.Itoa(s)
}

// observeProtocol records the per-protocol series from an exchange's audit
// fields (the same numbers the audit record carries).
func (m *metrics) observeProtocol(spiffeID string, fields map[string]any) {
	if model, ok := fields["model"].(string); ok {
		if p := intField(fields, "prompt_tokens"); p > 0 {
			m.tokens.WithLabelValues(spiffeID, model, "prompt").Add(float64(p))
		}
		if c := intField(fields, "completion_tokens"); c > 0 {
			m.tokens.WithLabelValues(spiffeID, model, "completion").Add(float64(c))
		}
	}
	if r, ok := fields["cutoff_reason"].(string); ok && r != "" {
		m.cutoffs.WithLabelValues(r).Inc()
	}
	if rules := stringList(fields["prompt_redacted"]); len(rules) > 0 {
		m.guardActions.WithLabelValues("request", "redacted").Inc()
	}
	if rg, ok := fields["response_guard"].(map[string]any); ok {
		m.observeResponseGuard(rg)
	}
}

// observeRequestGuard records the request-side verdict (input.guards) and
// whether a guard refused the request.
func (m *metrics) observeRequestGuard(guards map[string]any, refused bool) {
	if guards == nil {
		return
	}
	if cats, ok := guards["categories"].(map[string]any); ok {
		for cat, v := range cats {
			if c, ok := v.(map[string]any); ok {
				if n, ok := c["count"].(float64); ok && n > 0 {
					m.guardFinds.WithLabelValues("request", cat).Add(n)
				}
			}
		}
	}
	if guards["over_budget"] == true {
		m.guardActions.WithLabelValues("request", "over_budget").Inc()
	}
	if refused {
		m.guardActions.WithLabelValues("request", "blocked").Inc()
	}
}

// observeResponseGuard records a protocol's response_guard audit field:
// rule ids (one finding per rule counted) and the counts of what was done.
func (m *metrics) observeResponseGuard(rg map[string]any) {
	for _, rule := range stringList(rg["rules"]) {
		m.guardFinds.WithLabelValues("response", ruleCategory(rule)).Inc()
	}
	for field, action := range map[string]string{
		"withheld": "withheld", "hidden_tools": "hidden", "hidden_items": "hidden",
		"dropped_server_requests": "dropped", "flagged": "flagged", "stripped_instructions": "hidden",
	} {
		if n := intField(rg, field); n > 0 {
			m.guardActions.WithLabelValues("response", action).Add(float64(n))
		}
	}
	if rg["redacted"] == true {
		m.guardActions.WithLabelValues("response", "redacted").Inc()
	}
	if rg["over_budget"] == true {
		m.guardActions.WithLabelValues("response", "over_budget").Inc()
	}
}

// ruleCategory maps a rule id ("pi.override", "secret.aws-access-token",
// "pii.email") to its category.
func ruleCategory(rule string) string {
	switch {
	case strings.HasPrefix(rule, "pi."):
		return "prompt_injection"
	case strings.HasPrefix(rule, "secret."):
		return "secret"
	case strings.HasPrefix(rule, "pii."):
		return "pii"
	}
	return "other"
}

// stringList reads a []string or []any of strings.
func stringList(v any) []string {
	switch x := v.(type) {
	case []string:
		return x
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
