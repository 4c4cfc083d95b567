// Package gateway is Warden's composition root: it builds the identity
// source, policy engine, audit log, revocation store, protocols and
// transports from the config, binds the listeners, and wires the request
// path identity → protocol → policy → limits → audit → proxy. It is the one
// package that sees everything; the others see only their own slice.
package gateway

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardenhq/warden/internal/admin"
	"github.com/wardenhq/warden/internal/audit"
	"github.com/wardenhq/warden/internal/capture"
	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/guard"
	"github.com/wardenhq/warden/internal/identity"
	"github.com/wardenhq/warden/internal/policy"
	"github.com/wardenhq/warden/internal/protocol"
	"github.com/wardenhq/warden/internal/protocol/generic"
	"github.com/wardenhq/warden/internal/proxy"
	"github.com/wardenhq/warden/internal/ratelimit"
	"github.com/wardenhq/warden/internal/revoke"
)

// Decider is the policy engine as the gateway uses it.
type Decider interface {
	Decide(ctx context.Context, in *policy.Input) (protocol.Decision, error)
	DecideMany(ctx context.Context, ins []*policy.Input) ([]protocol.Decision, error)
}

// Auditor is the audit log as the gateway uses it.
type Auditor interface {
	Append(ctx context.Context, r *audit.Record) error
}

// Revocations is the kill-switch store as the gateway uses it.
type Revocations interface {
	Lookup(spiffeID string) (revoke.Entry, bool, error)
	Revoke(ctx context.Context, e revoke.Entry) error
	Unrevoke(ctx context.Context, spiffeID string) error
	List(ctx context.Context) ([]revoke.Entry, error)
	Subscribe(fn func(e revoke.Entry, revoked bool)) (cancel func())
}

// Options carries what New cannot read from the config. Zero values are fine.
type Options struct {
	Logger *slog.Logger
	// Now is the clock (tests inject one). Default time.Now.
	Now func() time.Time
	// Registry receives every metric. Default: a new registry.
	Registry *prometheus.Registry
	// Protocols maps backend kind to implementation; the generic "http"
	// protocol is always present.
	Protocols map[string]protocol.Protocol
	// Audit, when set, replaces the audit log built from the config (tests
	// inject a failing one).
	Audit Auditor
	// Revocations, when set, replaces the store built from the config.
	Revocations Revocations
}

// Gateway is a running Warden instance.
type Gateway struct {
	cfg      *config.Config
	log      *slog.Logger
	now      func() time.Time
	reg      *prometheus.Registry
	metrics  *metrics
	src      identity.Source
	policy   Decider
	engine   *policy.Engine
	audit    Auditor
	auditLog *audit.Log
	revs     Revocations
	limits   admitter
	guard    *guard.Scanner  // nil: guardrails off
	pguard   protocol.Guard  // the scanner as protocols see it; nil: off
	capture  *capture.Writer // redacted body capture; nil: off
	idm      *identity.Metrics
	router   *router
	killer   *killer

	idPrefix string
	idSeq    atomic.Uint64

	listeners []*boundListener
	admin     *admin.Server
	ready     atomic.Bool
	closers   []func() error
	closeOnce sync.Once
}

type boundListener struct {
	cfg *config.Listener
	ln  net.Listener
	srv *http.Server
}

// New builds a gateway from cfg and binds its listeners (so an address in
// use fails here, before anything is served). Close releases everything.
func New(ctx context.Context, cfg *config.Config, opts Options) (g *Gateway, err error) {
	g = &Gateway{cfg: cfg, log: opts.Logger, now: opts.Now, reg: opts.Registry, killer: newKiller()}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.reg == nil {
		g.reg = prometheus.NewRegistry()
		g.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	var b [6]byte
	_, _ = rand.Read(b[:])
	g.idPrefix = hex.EncodeToString(b[:]) + "-"
	g.metrics = newMetrics(g.reg)
	if g.idm, err = identity.NewMetrics(g.reg); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	base := cfg.Dir()

	g.src, err = identity.NewSource(ctx, cfg.Identity, base, g.log.With("component", "identity"))
	if err != nil {
		return nil, fmt.Errorf("gateway: identity: %w", err)
	}
	g.closers = append(g.closers, g.src.Close)

	g.engine, err = policy.New(ctx, cfg.Policy, base, g.log.With("component", "policy"), g.reg)
	if err != nil {
		return nil, fmt.Errorf("gateway: policy: %w", err)
	}
	g.policy = g.engine

	if opts.Audit != nil {
		g.audit = opts.Audit
	} else {
		ao := audit.Options{Logger: g.log.With("component", "audit"), Registerer: g.reg, Now: g.now}
		if cfg.Audit.KeyFile != "" {
			if ao.Key, err = os.ReadFile(cfg.Resolve(cfg.Audit.KeyFile)); err != nil {
				return nil, fmt.Errorf("gateway: audit key: %w", err)
			}
		}
		g.auditLog, err = audit.OpenWith(cfg.Audit, base, ao)
		if err != nil {
			return nil, fmt.Errorf("gateway: audit: %w", err)
		}
		g.audit = g.auditLog
		g.closers = append(g.closers, g.auditLog.Close)
	}

	switch {
	case opts.Revocations != nil:
		g.revs = opts.Revocations
	case cfg.Revocation.Store == "redis":
		rs, err := revoke.OpenRedis(ctx, *cfg.Redis, g.log.With("component", "revoke"), g.now)
		if err != nil {
			return nil, fmt.Errorf("gateway: revocations: %w", err)
		}
		g.revs = rs
		g.closers = append(g.closers, rs.Close)
	default:
		fs, err := revoke.OpenFile(cfg.Resolve(cfg.Revocation.Path), g.log.With("component", "revoke"), g.now)
		if err != nil {
			return nil, fmt.Errorf("gateway: revocations: %w", err)
		}
		g.revs = fs
		g.closers = append(g.closers, fs.Close)
	}

	lopts := ratelimit.Options{Log: g.log.With("component", "ratelimit"), Now: g.now, Registerer: g.reg}
	if cfg.Redis != nil {
		rs, err := ratelimit.OpenRedis(ctx, *cfg.Redis)
		if err != nil {
			return nil, fmt.Errorf("gateway: limits: %w", err)
		}
		lopts.Redis = rs
		g.closers = append(g.closers, rs.Close)
	}
	lim, err := ratelimit.New(lopts)
	if err != nil {
		return nil, fmt.Errorf("gateway: limits: %w", err)
	}
	g.limits = limiter{lim}
	if g.guard, err = newScanner(cfg.Guard, g.log.With("component", "guard")); err != nil {
		return nil, fmt.Errorf("gateway: guard: %w", err)
	}
	g.pguard = guard.ForProtocols(g.guard) // nil when guardrails are off
	if cfg.Guard != nil && cfg.Guard.Capture != nil {
		if g.capture, err = newCapture(cfg.Guard.Capture, g.guard, g.log.With("component", "capture"), g.reg); err != nil {
			return nil, fmt.Errorf("gateway: guard: %w", err)
		}
		g.closers = append(g.closers, g.capture.Close)
	}
	unsub := g.revs.Subscribe(g.onRevocation)
	g.closers = append(g.closers, func() error { unsub(); return nil })

	protos := map[string]protocol.Protocol{config.KindHTTP: generic.Protocol{}}
	for k, p := range opts.Protocols {
		protos[k] = p
	}
	for i := range cfg.Backends {
		kind := cfg.Backends[i].Kind
		if _, ok := protos[kind]; ok {
			continue
		}
		f, ok := protocolFactories[kind]
		if !ok {
			continue // reported by newBackend
		}
		p, err := f(cfg, protoDeps{log: g.log, reg: g.reg, now: g.now})
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		protos[kind] = p
	}
	backends := map[string]*backend{}
	for i := range cfg.Backends {
		bc := &cfg.Backends[i]
		be, err := g.newBackend(bc, protos)
		if err != nil {
			return nil, err
		}
		backends[bc.Name] = be
	}
	var routes []*route
	for i := range cfg.Routes {
		rc := &cfg.Routes[i]
		routes = append(routes, &route{
			name: rc.Name, host: lower(rc.Host), prefix: rc.PathPrefix, strip: rc.StripPrefix,
			listener: rc.Listener, backend: backends[rc.Backend],
		})
	}
	g.router = newRouter(routes)

	for i := range cfg.Listeners {
		if err := g.bind(&cfg.Listeners[i]); err != nil {
			return nil, err
		}
	}
	if cfg.Admin != nil {
		g.admin, err = admin.New(admin.Options{
			Config:      cfg.Admin,
			Source:      g.src,
			Registry:    g.reg,
			Revocations: g.revs,
			Audit:       g.audit,
			Ready:       g.ready.Load,
			Logger:      g.log.With("component", "admin"),
			Now:         g.now,
		})
		if err != nil {
			return nil, fmt.Errorf("gateway: admin: %w", err)
		}
	}
	return g, nil
}

func (g *Gateway) newBackend(bc *config.Backend, protos map[string]protocol.Protocol) (*backend, error) {
	p, ok := protos[bc.Kind]
	if !ok {
		return nil, fmt.Errorf("gateway: backend %q: kind %q is not available in this build", bc.Name, bc.Kind)
	}
	u, err := url.Parse(bc.URL)
	if err != nil {
		return nil, fmt.Errorf("gateway: backend %q: %w", bc.Name, err)
	}
	t := g.cfg.UpstreamTimeouts(bc)
	opts := proxy.TransportOptions{DialTimeout: t.Dial, ResponseHeaderTimeout: t.ResponseHeader, IdleConnTimeout: t.Idle}
	switch bc.TLS.Mode {
	case "mtls":
		id, err := spiffeid.FromString(bc.TLS.SpiffeID)
		if err != nil {
			return nil, fmt.Errorf("gateway: backend %q: %w", bc.Name, err)
		}
		opts.TLS = identity.ClientTLSConfig(g.src, id)
	case "tls":
		tc, err := webPKIConfig(g.cfg.Resolve(bc.TLS.CAFile), bc.TLS.ServerName)
		if err != nil {
			return nil, fmt.Errorf("gateway: backend %q: %w", bc.Name, err)
		}
		opts.TLS = tc
	case "plaintext":
	}
	return &backend{cfg: bc, base: u, proto: p, rt: proxy.NewTransport(opts)}, nil
}

func (g *Gateway) bind(lc *config.Listener) error {
	var tds []spiffeid.TrustDomain
	accept := map[spiffeid.TrustDomain]bool{}
	for _, s := range lc.TrustDomains {
		td, err := spiffeid.TrustDomainFromString(s)
		if err != nil {
			return fmt.Errorf("gateway: listener %q: %w", lc.Name, err)
		}
		tds = append(tds, td)
		accept[td] = true
	}
	h := &handler{g: g, lc: lc, tdAccept: accept}
	for _, a := range lc.Auth {
		switch a {
		case "mtls":
			h.mtls = true
		case "jwt":
			h.jwt = identity.NewJWTVerifier(g.src, lc.JWTAudiences, tds).WithClock(g.now).WithMetrics(g.idm)
		}
	}
	minV := uint16(tls.VersionTLS13)
	if lc.MinTLSVersion == "1.2" {
		minV = tls.VersionTLS12
	}
	tlsCfg := identity.ServerTLSConfig(g.src, identity.ServerOptions{
		TrustDomains:      tds,
		RequireClientCert: h.jwt == nil,
		MinVersion:        minV,
		Now:               g.now,
	})
	ln, err := net.Listen("tcp", lc.Address)
	if err != nil {
		return fmt.Errorf("gateway: listener %q: %w", lc.Name, err)
	}
	t := g.cfg.Timeouts
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: t.ReadHeader,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    g.cfg.Limits.MaxHeaderBytes,
		// Counts refused handshakes by reason (no cert, expired, untrusted, ...).
		ErrorLog: g.idm.ErrorLog(g.log.With("listener", lc.Name)),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateClosed || s == http.StateHijacked {
				g.killer.forgetConn(c)
			}
		},
	}
	g.listeners = append(g.listeners, &boundListener{cfg: lc, ln: ln, srv: srv})
	return nil
}

// Addr returns the bound address of the named listener ("admin" for the
// admin listener), useful with port 0.
func (g *Gateway) Addr(name string) string {
	if name == "admin" && g.admin != nil {
		return g.admin.Addr()
	}
	for _, l := range g.listeners {
		if l.cfg.Name == name {
			return l.ln.Addr().String()
		}
	}
	return ""
}

// Registry is the metrics registry.
func (g *Gateway) Registry() *prometheus.Registry { return g.reg }

// Reload re-reads policy and data (SIGHUP). A broken policy is refused and
// the last good one keeps serving.
func (g *Gateway) Reload(ctx context.Context) error {
	if g.engine == nil {
		return nil
	}
	err := g.engine.Reload(ctx)
	rec := &audit.Record{Time: g.now(), Event: "policy_reload", Decision: "success", Reasons: []string{"version:" + g.engine.Version()}}
	if err != nil {
		rec.Decision = "failure"
		rec.Error = "policy_rejected"
	}
	_ = g.audit.Append(ctx, rec)
	return err
}

// Run serves until ctx is cancelled, then drains in-flight requests for at
// most Timeouts.Shutdown and closes everything.
func (g *Gateway) Run(ctx context.Context) error {
	errc := make(chan error, len(g.listeners)+1)
	for _, l := range g.listeners {
		l := l
		go func() {
			err := l.srv.Serve(tls.NewListener(l.ln, l.srv.TLSConfig))
			if !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("gateway: listener %q: %w", l.cfg.Name, err)
			}
		}()
	}
	if g.admin != nil {
		go func() {
			if err := g.admin.Serve(); err != nil {
				errc <- err
			}
		}()
	}
	if g.engine != nil && *g.cfg.Policy.Watch {
		go g.engine.Watch(ctx)
	}
	_ = g.audit.Append(ctx, &audit.Record{Time: g.now(), Event: "startup", Reasons: []string{"listeners:" + strconv.Itoa(len(g.listeners))}})
	g.ready.Store(true)
	g.log.Info("warden serving", "listeners", len(g.listeners))

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	g.ready.Store(false)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.Timeouts.Shutdown)
	defer cancel()
	g.Shutdown(sctx)
	return runErr
}

// Shutdown stops accepting, waits for in-flight requests (streams included)
// until ctx ends, then closes what is left and releases every resource.
func (g *Gateway) Shutdown(ctx context.Context) {
	var wg sync.WaitGroup
	for _, l := range g.listeners {
		wg.Add(1)
		go func(l *boundListener) {
			defer wg.Done()
			if err := l.srv.Shutdown(ctx); err != nil {
				_ = l.srv.Close()
			}
		}(l)
	}
	if g.admin != nil {
		wg.Add(1)
		go func() { defer wg.Done(); g.admin.Shutdown(ctx) }()
	}
	wg.Wait()
	_ = g.audit.Append(context.WithoutCancel(ctx), &audit.Record{Time: g.now(), Event: "shutdown"})
	g.Close()
}

// Close releases resources without draining (use Shutdown to drain).
func (g *Gateway) Close() {
	g.closeOnce.Do(func() {
		for _, l := range g.listeners {
			_ = l.srv.Close()
			_ = l.ln.Close()
		}
		for i := len(g.closers) - 1; i >= 0; i-- {
			_ = g.closers[i]()
		}
	})
}

// onRevocation ends a revoked identity's requests and connections at once.
func (g *Gateway) onRevocation(e revoke.Entry, revoked bool) {
	if !revoked {
		g.metrics.revoked.WithLabelValues("unrevoke").Inc()
		return
	}
	g.metrics.revoked.WithLabelValues("revoke").Inc()
	reqs, conns := g.killer.kill(e.SpiffeID)
	g.metrics.killed.WithLabelValues("request").Add(float64(reqs))
	g.metrics.killed.WithLabelValues("connection").Add(float64(conns))
	g.log.Warn("identity revoked; open requests and connections closed",
		"spiffe_id", e.SpiffeID, "requests", reqs, "connections", conns)
}

func (g *Gateway) nextRequestID() string {
	return g.idPrefix + strconv.FormatUint(g.idSeq.Add(1), 36)
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}
