package identity

import (
	"bytes"
	"errors"
	"log"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts authentication refusals by reason, so an operator can tell
// an expired agent from an attacker from a misconfigured trust domain.
// A nil *Metrics counts nothing.
type Metrics struct {
	handshake *prometheus.CounterVec
	jwt       *prometheus.CounterVec
}

// NewMetrics registers warden_identity_tls_handshake_failures_total and
// warden_identity_jwt_failures_total (label "reason") with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		handshake: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_identity_tls_handshake_failures_total",
			Help: "TLS handshakes refused on data-plane listeners, by reason.",
		}, []string{"reason"}),
		jwt: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_identity_jwt_failures_total",
			Help: "JWT-SVID bearer tokens refused, by reason.",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.handshake, m.jwt} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) observeJWT(kind error) {
	if m == nil {
		return
	}
	m.jwt.WithLabelValues(reason(kind)).Inc()
}

func reason(kind error) string {
	switch {
	case errors.Is(kind, ErrNoCredentials):
		return "missing"
	case errors.Is(kind, ErrMalformedCredentials):
		return "malformed"
	case errors.Is(kind, ErrExpired):
		return "expired"
	case errors.Is(kind, ErrTrustDomainNotAccepted):
		return "trust_domain_not_accepted"
	case errors.Is(kind, ErrNoPeerCertificate):
		return "no_client_certificate"
	}
	return "invalid"
}

// HandshakeReason classifies a TLS handshake error text into a metric
// label. net/http reports handshake failures only as log lines, so the
// text is all there is; unknown texts are "other".
func HandshakeReason(msg string) string {
	switch {
	case strings.Contains(msg, ErrTrustDomainNotAccepted.Error()):
		return "trust_domain_not_accepted"
	case strings.Contains(msg, ErrExpired.Error()), strings.Contains(msg, "certificate has expired or is not yet valid"):
		return "expired"
	case strings.Contains(msg, "unknown authority"):
		return "untrusted_authority"
	case strings.Contains(msg, ErrNoPeerCertificate.Error()), strings.Contains(msg, "client didn't provide a certificate"):
		return "no_client_certificate"
	case strings.Contains(msg, ErrInvalidCredentials.Error()), strings.Contains(msg, "failed to verify certificate"):
		return "invalid_certificate"
	case strings.Contains(msg, "EOF"), strings.Contains(msg, "connection reset"):
		return "client_closed"
	case strings.Contains(msg, "protocol version"), strings.Contains(msg, "no cipher suite"), strings.Contains(msg, "no application protocol"):
		return "protocol"
	}
	return "other"
}

// ErrorLog returns a *log.Logger for http.Server.ErrorLog that counts "TLS
// handshake error" lines by HandshakeReason and forwards every line to next
// (TLS handshake errors at debug: scanners make them common; the rest at
// warn). m and next may be nil.
func (m *Metrics) ErrorLog(next *slog.Logger) *log.Logger {
	return log.New(errorLogWriter{m: m, next: next}, "", 0)
}

type errorLogWriter struct {
	m    *Metrics
	next *slog.Logger
}

func (w errorLogWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimRight(p, "\n"))
	if strings.Contains(msg, "TLS handshake error") {
		r := HandshakeReason(msg)
		if w.m != nil {
			w.m.handshake.WithLabelValues(r).Inc()
		}
		if w.next != nil {
			w.next.Debug("tls handshake refused", "reason", r, "error", msg)
		}
		return len(p), nil
	}
	if w.next != nil {
		w.next.Warn(msg, "component", "http")
	}
	return len(p), nil
}
