package gateway

import (
	"strconv"

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
	reg.MustRegister(m.requests, m.duration, m.decision, m.authFailures, m.revoked, m.killed, m.upstream, m.inflight)
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
