// Package admin serves Warden's admin API on its own mTLS listener: health,
// readiness, Prometheus metrics and the kill switch (revocations). Only the
// SPIFFE IDs listed in admin.allowed_ids may call it, and every change is
// audited with the caller's identity.
//
//	GET    /healthz                    liveness
//	GET    /readyz                     readiness (503 while starting or draining)
//	GET    /metrics                    Prometheus exposition
//	GET    /v1/revocations             list
//	POST   /v1/revocations             {"spiffe_id": "...", "reason": "..."}
//	DELETE /v1/revocations?spiffe_id=  lift a revocation
package admin

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardenhq/warden/internal/audit"
	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/identity"
	"github.com/wardenhq/warden/internal/revoke"
)

// Revocations is the kill-switch store as the admin API uses it.
type Revocations interface {
	Revoke(ctx context.Context, e revoke.Entry) error
	Unrevoke(ctx context.Context, spiffeID string) error
	List(ctx context.Context) ([]revoke.Entry, error)
}

// Auditor records admin changes.
type Auditor interface {
	Append(ctx context.Context, r *audit.Record) error
}

// Options configures the admin server.
type Options struct {
	Config      *config.Admin
	Source      identity.Source
	Registry    *prometheus.Registry
	Revocations Revocations
	Audit       Auditor
	// Ready reports readiness; nil means always ready.
	Ready  func() bool
	Logger *slog.Logger
	Now    func() time.Time
}

// Server is the admin listener (and the optional plaintext probe listener).
type Server struct {
	o       Options
	allowed map[spiffeid.ID]bool
	ln      net.Listener
	srv     *http.Server
	probeLn net.Listener
	probe   *http.Server
}

// New binds the admin listener.
func New(o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, allowed: map[spiffeid.ID]bool{}}
	var tds []spiffeid.TrustDomain
	seenTD := map[spiffeid.TrustDomain]bool{}
	for _, a := range o.Config.AllowedIDs {
		id, err := spiffeid.FromString(a)
		if err != nil {
			return nil, fmt.Errorf("admin: allowed id %q: %w", a, err)
		}
		s.allowed[id] = true
		if !seenTD[id.TrustDomain()] {
			seenTD[id.TrustDomain()] = true
			tds = append(tds, id.TrustDomain())
		}
	}
	tlsCfg := identity.ServerTLSConfig(o.Source, identity.ServerOptions{
		TrustDomains: tds, RequireClientCert: true, MinVersion: tls.VersionTLS13, Now: o.Now,
	})
	ln, err := net.Listen("tcp", o.Config.Address)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	s.ln = tls.NewListener(ln, tlsCfg)
	s.srv = &http.Server{
		Handler:           s.authenticated(s.routes()),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug),
	}
	if o.Config.ProbeAddress != "" {
		pl, err := net.Listen("tcp", o.Config.ProbeAddress)
		if err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("admin: probe: %w", err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /healthz", s.healthz)
		mux.HandleFunc("GET /readyz", s.readyz)
		s.probeLn = pl
		s.probe = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	}
	return s, nil
}

// Addr is the bound admin address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// ProbeAddr is the bound probe address, or "".
func (s *Server) ProbeAddr() string {
	if s.probeLn == nil {
		return ""
	}
	return s.probeLn.Addr().String()
}

// Serve blocks until Shutdown.
func (s *Server) Serve() error {
	if s.probe != nil {
		go func() { _ = s.probe.Serve(s.probeLn) }()
	}
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin: %w", err)
	}
	return nil
}

// Shutdown drains the admin listeners.
func (s *Server) Shutdown(ctx context.Context) {
	_ = s.srv.Shutdown(ctx)
	if s.probe != nil {
		_ = s.probe.Shutdown(ctx)
	}
}

type callerKey struct{}

// authenticated admits only allowed SPIFFE IDs from the verified chain.
func (s *Server) authenticated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		identity.StripIdentityHeaders(r.Header)
		if r.TLS == nil {
			writeErr(w, http.StatusUnauthorized, "unauthenticated", "mTLS required")
			return
		}
		p, err := identity.PeerFromTLS(r.TLS)
		if err != nil {
			writeErr(w, http.StatusUnauthorized, "unauthenticated", "client certificate is not a valid X.509-SVID")
			return
		}
		if !s.allowed[p.ID] {
			s.o.Logger.Warn("admin access denied", "spiffe_id", p.ID.String(), "path", r.URL.Path)
			writeErr(w, http.StatusForbidden, "forbidden", "identity is not an admin")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, p.ID.String())))
	})
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	if s.o.Registry != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.o.Registry, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /v1/revocations", s.list)
	mux.HandleFunc("POST /v1/revocations", s.revoke)
	mux.HandleFunc("DELETE /v1/revocations", s.unrevoke)
	return mux
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.o.Ready != nil && !s.o.Ready() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	es, err := s.o.Revocations.List(r.Context())
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, "revocations_unavailable", "revocation store unavailable")
		return
	}
	if es == nil {
		es = []revoke.Entry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"revocations": es})
}

// RevokeRequest is the body of POST /v1/revocations.
type RevokeRequest struct {
	SpiffeID string `json:"spiffe_id"`
	Reason   string `json:"reason"`
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	var req RevokeRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, "invalid_request", "body must be {\"spiffe_id\":..., \"reason\":...}")
		return
	}
	id, err := spiffeid.FromString(req.SpiffeID)
	if err != nil {
		writeErr(w, http.StatusBadRequest, "invalid_spiffe_id", err.Error())
		return
	}
	by, _ := r.Context().Value(callerKey{}).(string)
	e := revoke.Entry{SpiffeID: id.String(), Reason: req.Reason, By: by, At: s.o.Now()}
	// Audit first: a revocation nobody can account for is worse than none.
	if err := s.o.Audit.Append(r.Context(), &audit.Record{
		Time: e.At, Event: "revocation", SpiffeID: e.SpiffeID, Decision: "revoke",
		Reasons: []string{"by:" + by, "reason:" + truncate(req.Reason, 256)},
	}); err != nil {
		writeErr(w, http.StatusServiceUnavailable, "audit_unavailable", "audit log unavailable")
		return
	}
	if err := s.o.Revocations.Revoke(r.Context(), e); err != nil {
		s.o.Logger.Error("revoke failed", "spiffe_id", e.SpiffeID, "error", err)
		writeErr(w, http.StatusServiceUnavailable, "revocations_unavailable", "revocation store unavailable")
		return
	}
	s.o.Logger.Warn("identity revoked", "spiffe_id", e.SpiffeID, "by", by)
	writeJSON(w, http.StatusOK, e)
}

func (s *Server) unrevoke(w http.ResponseWriter, r *http.Request) {
	id, err := spiffeid.FromString(r.URL.Query().Get("spiffe_id"))
	if err != nil {
		writeErr(w, http.StatusBadRequest, "invalid_spiffe_id", "query parameter spiffe_id must be a SPIFFE ID")
		return
	}
	by, _ := r.Context().Value(callerKey{}).(string)
	if err := s.o.Audit.Append(r.Context(), &audit.Record{
		Time: s.o.Now(), Event: "unrevocation", SpiffeID: id.String(), Decision: "unrevoke",
		Reasons: []string{"by:" + by},
	}); err != nil {
		writeErr(w, http.StatusServiceUnavailable, "audit_unavailable", "audit log unavailable")
		return
	}
	if err := s.o.Revocations.Unrevoke(r.Context(), id.String()); err != nil {
		writeErr(w, http.StatusServiceUnavailable, "revocations_unavailable", "revocation store unavailable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"spiffe_id": id.String(), "status": "unrevoked"})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
