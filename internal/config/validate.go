package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Backend kinds.
const (
	KindHTTP      = "http"
	KindOpenAI    = "openai"
	KindAnthropic = "anthropic"
	KindMCP       = "mcp"
	KindQdrant    = "qdrant"
)

// Defaults, in one place so docs and code agree.
const (
	DefaultIdentityHeader = "X-Warden-Spiffe-Id"
	DefaultPolicyQuery    = "data.warden.authz.decision"
	DefaultMaxHeaderBytes = 32 << 10
	DefaultMaxBodyBytes   = 4 << 20
	DefaultMaxJSONDepth   = 64
	DefaultRotateBytes    = 100 << 20
)

func setDur(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

func setStr(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

// ApplyDefaults fills every unset field with its documented default.
func (c *Config) ApplyDefaults() {
	id := &c.Identity
	setStr(&id.Source, "files")
	if id.Files != nil {
		setStr(&id.Files.SVID, "svid.pem")
		setStr(&id.Files.Key, "svid_key.pem")
		setStr(&id.Files.Bundle, "svid_bundle.pem")
		setDur(&id.Files.PollInterval, 5*time.Second)
	}
	if id.Source == "workload_api" {
		if id.WorkloadAPI == nil {
			id.WorkloadAPI = &WorkloadAPI{}
		}
		setDur(&id.WorkloadAPI.StartTimeout, 30*time.Second)
	}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		if len(l.Auth) == 0 {
			l.Auth = []string{"mtls"}
		}
		if len(l.TrustDomains) == 0 && id.TrustDomain != "" {
			l.TrustDomains = []string{id.TrustDomain}
		}
		setStr(&l.MinTLSVersion, "1.3")
	}
	for i := range c.Backends {
		b := &c.Backends[i]
		setStr(&b.Kind, KindHTTP)
		setStr(&b.TLS.Mode, "mtls")
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		setStr(&r.PathPrefix, "/")
		if r.Name == "" {
			r.Name = r.Backend + r.PathPrefix
		}
	}
	p := &c.Policy
	setStr(&p.Query, DefaultPolicyQuery)
	setDur(&p.Timeout, 100*time.Millisecond)
	if p.TestOnLoad == nil {
		t := true
		p.TestOnLoad = &t
	}
	if p.Watch == nil {
		t := true
		p.Watch = &t
	}
	a := &c.Audit
	setStr(&a.Mode, "batched")
	setDur(&a.MaxDelay, 10*time.Millisecond)
	if a.MaxBatch == 0 {
		a.MaxBatch = 512
	}
	if a.RotateBytes == 0 {
		a.RotateBytes = DefaultRotateBytes
	}
	setDur(&a.QueueTimeout, time.Second)
	setStr(&c.Revocation.Store, "file")
	if c.Revocation.Path == "" && a.Path != "" {
		c.Revocation.Path = joinDir(a.Path, "revocations.json")
	}
	if r := c.Redis; r != nil {
		setStr(&r.KeyPrefix, "warden:")
		setDur(&r.Timeout, 50*time.Millisecond)
		setStr(&r.OnError, "deny")
	}
	l := &c.Limits
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.MaxJSONDepth == 0 {
		l.MaxJSONDepth = DefaultMaxJSONDepth
	}
	t := &c.Timeouts
	setDur(&t.ReadHeader, 10*time.Second)
	setDur(&t.ReadBody, 30*time.Second)
	setDur(&t.Write, 5*time.Minute)
	setDur(&t.Idle, 120*time.Second)
	setDur(&t.Stream, 10*time.Minute)
	setDur(&t.Upstream.Dial, 5*time.Second)
	setDur(&t.Upstream.ResponseHeader, 60*time.Second)
	setDur(&t.Upstream.Idle, 90*time.Second)
	setDur(&t.Shutdown, 30*time.Second)
	setStr(&c.IdentityHeader, DefaultIdentityHeader)
	setStr(&c.Log.Level, "info")
	setStr(&c.Log.Format, "json")
	if g := c.Guard; g != nil {
		setStr(&g.FailMode, "closed")
		if g.Remote != nil {
			// The request's scan budget must leave room for the classifier.
			setDur(&g.Remote.Timeout, 2*time.Second)
			setDur(&g.Timeout, g.Remote.Timeout+250*time.Millisecond)
		}
		setDur(&g.Timeout, 250*time.Millisecond)
		if g.MaxBytes == 0 {
			g.MaxBytes = 1 << 20
		}
		if g.StreamWindow == 0 {
			g.StreamWindow = 256
		}
		if r := g.Remote; r != nil {
			setDur(&r.Timeout, 2*time.Second)
			setStr(&r.FailMode, "closed")
			if r.MaxBytes == 0 {
				r.MaxBytes = 32 << 10
			}
			if len(r.Contexts) == 0 {
				r.Contexts = []string{"user", "tool_output", "tool_description", "document"}
			}
		}
		if cp := g.Capture; cp != nil {
			setStr(&cp.When, "flagged")
			if cp.Sample == 0 && cp.When == "flagged" {
				cp.Sample = 1
			}
			if cp.MaxBodyBytes == 0 {
				cp.MaxBodyBytes = 64 << 10
			}
			if cp.MaxFileBytes == 0 {
				cp.MaxFileBytes = 256 << 20
			}
		}
	}
}

func joinDir(file, name string) string {
	i := strings.LastIndexByte(file, '/')
	if i < 0 {
		return name
	}
	return file[:i+1] + name
}

// UpstreamTimeouts returns b's timeouts with the global ones filled in.
func (c *Config) UpstreamTimeouts(b *Backend) UpstreamTimeouts {
	t := c.Timeouts.Upstream
	if b.Timeouts != nil {
		if b.Timeouts.Dial > 0 {
			t.Dial = b.Timeouts.Dial
		}
		if b.Timeouts.ResponseHeader > 0 {
			t.ResponseHeader = b.Timeouts.ResponseHeader
		}
		if b.Timeouts.Idle > 0 {
			t.Idle = b.Timeouts.Idle
		}
	}
	return t
}

// Validate reports every problem at once, each naming file, line and field.
func (c *Config) Validate() error {
	v := &validator{c: c}
	id := c.Identity
	if id.TrustDomain == "" {
		v.add("identity.trust_domain", "required")
	} else if _, err := spiffeid.TrustDomainFromString(id.TrustDomain); err != nil {
		v.add("identity.trust_domain", "invalid trust domain %q: %v", id.TrustDomain, err)
	}
	switch id.Source {
	case "files":
		if id.Files == nil || id.Files.Dir == "" {
			v.add("identity.files.dir", "required when identity.source is files")
		}
	case "workload_api":
		if id.WorkloadAPI.Socket != "" && !strings.HasPrefix(id.WorkloadAPI.Socket, "unix://") && !strings.HasPrefix(id.WorkloadAPI.Socket, "tcp://") {
			v.add("identity.workload_api.socket", "must start with unix:// or tcp://")
		}
	default:
		v.add("identity.source", "must be files or workload_api, not %q", id.Source)
	}
	for i, f := range id.Federation {
		p := fmt.Sprintf("identity.federation[%d]", i)
		if _, err := spiffeid.TrustDomainFromString(f.TrustDomain); err != nil {
			v.add(p+".trust_domain", "invalid trust domain %q", f.TrustDomain)
		}
		if f.BundleFile == "" && id.Source == "files" {
			v.add(p+".bundle_file", "required when identity.source is files")
		}
	}
	for i, j := range id.JWTBundles {
		p := fmt.Sprintf("identity.jwt_bundles[%d]", i)
		if _, err := spiffeid.TrustDomainFromString(j.TrustDomain); err != nil {
			v.add(p+".trust_domain", "invalid trust domain %q", j.TrustDomain)
		}
		if j.File == "" {
			v.add(p+".file", "required")
		}
	}

	if len(c.Listeners) == 0 {
		v.add("listeners", "at least one listener is required")
	}
	names := map[string]bool{}
	for i, l := range c.Listeners {
		p := fmt.Sprintf("listeners[%d]", i)
		if l.Name == "" {
			v.add(p+".name", "required")
		} else if names[l.Name] {
			v.add(p+".name", "duplicate listener name %q", l.Name)
		}
		names[l.Name] = true
		v.hostPort(p+".address", l.Address)
		jwt := false
		for _, a := range l.Auth {
			switch a {
			case "mtls":
			case "jwt":
				jwt = true
			default:
				v.add(p+".auth", "unknown method %q (mtls, jwt)", a)
			}
		}
		if jwt && len(l.JWTAudiences) == 0 {
			v.add(p+".jwt_audiences", "required when auth includes jwt")
		}
		for _, td := range l.TrustDomains {
			if _, err := spiffeid.TrustDomainFromString(td); err != nil {
				v.add(p+".trust_domains", "invalid trust domain %q", td)
			}
		}
		if l.MinTLSVersion != "1.2" && l.MinTLSVersion != "1.3" {
			v.add(p+".min_tls_version", "must be 1.2 or 1.3")
		}
	}
	if a := c.Admin; a != nil {
		v.hostPort("admin.address", a.Address)
		if len(a.AllowedIDs) == 0 {
			v.add("admin.allowed_ids", "at least one admin SPIFFE ID is required")
		}
		for _, s := range a.AllowedIDs {
			if _, err := spiffeid.FromString(s); err != nil {
				v.add("admin.allowed_ids", "invalid SPIFFE ID %q: %v", s, err)
			}
		}
		if a.ProbeAddress != "" {
			v.hostPort("admin.probe_address", a.ProbeAddress)
		}
	}

	if len(c.Backends) == 0 {
		v.add("backends", "at least one backend is required")
	}
	backends := map[string]bool{}
	for i, b := range c.Backends {
		p := fmt.Sprintf("backends[%d]", i)
		if b.Name == "" {
			v.add(p+".name", "required")
		} else if backends[b.Name] {
			v.add(p+".name", "duplicate backend name %q", b.Name)
		}
		backends[b.Name] = true
		switch b.Kind {
		case KindHTTP, KindOpenAI, KindAnthropic, KindMCP, KindQdrant:
		default:
			v.add(p+".kind", "unknown kind %q (http, openai, anthropic, mcp, qdrant)", b.Kind)
		}
		u, err := url.Parse(b.URL)
		switch {
		case b.URL == "":
			v.add(p+".url", "required")
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			v.add(p+".url", "must be an absolute http(s) URL, got %q", b.URL)
		case u.User != nil:
			v.add(p+".url", "must not carry credentials")
		}
		switch b.TLS.Mode {
		case "mtls":
			if b.TLS.SpiffeID == "" {
				v.add(p+".tls.spiffe_id", "required with tls.mode mtls (the upstream's SPIFFE ID)")
			} else if _, err := spiffeid.FromString(b.TLS.SpiffeID); err != nil {
				v.add(p+".tls.spiffe_id", "invalid SPIFFE ID %q", b.TLS.SpiffeID)
			}
			if u != nil && u.Scheme == "http" {
				v.add(p+".url", "tls.mode mtls needs an https URL")
			}
		case "tls":
			if u != nil && u.Scheme == "http" {
				v.add(p+".url", "tls.mode tls needs an https URL")
			}
		case "plaintext":
			if !b.TLS.AllowPlaintext {
				v.add(p+".tls.allow_plaintext", "must be true to use tls.mode plaintext")
			}
			if u != nil && !isLoopbackHost(u.Hostname()) {
				v.add(p+".url", "plaintext is only allowed to loopback, not %q", u.Hostname())
			}
			if u != nil && u.Scheme != "http" {
				v.add(p+".url", "tls.mode plaintext needs an http URL")
			}
		default:
			v.add(p+".tls.mode", "must be mtls, tls or plaintext, not %q", b.TLS.Mode)
		}
	}

	if len(c.Routes) == 0 {
		v.add("routes", "at least one route is required")
	}
	seen := map[string]int{}
	for i, r := range c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		if r.Backend == "" {
			v.add(p+".backend", "required")
		} else if !backends[r.Backend] {
			v.add(p+".backend", "unknown backend %q", r.Backend)
		}
		if !strings.HasPrefix(r.PathPrefix, "/") {
			v.add(p+".path_prefix", "must start with /")
		}
		if r.Listener != "" && !names[r.Listener] {
			v.add(p+".listener", "unknown listener %q", r.Listener)
		}
		key := r.Listener + "|" + strings.ToLower(r.Host) + "|" + r.PathPrefix
		if j, dup := seen[key]; dup {
			v.add(p, "same listener, host and path_prefix as routes[%d]", j)
		}
		seen[key] = i
	}

	if c.Audit.Path == "" {
		v.add("audit.path", "required (the audit log is not optional)")
	}
	if c.Audit.Mode != "strict" && c.Audit.Mode != "batched" {
		v.add("audit.mode", "must be strict or batched, not %q", c.Audit.Mode)
	}
	if c.Audit.MaxBatch <= 0 {
		v.add("audit.max_batch", "must be positive")
	}
	switch c.Revocation.Store {
	case "file":
	case "redis":
		if c.Redis == nil {
			v.add("revocation.store", "redis needs the redis section")
		}
	default:
		v.add("revocation.store", "must be file or redis, not %q", c.Revocation.Store)
	}
	if r := c.Redis; r != nil {
		v.hostPort("redis.address", r.Address)
		if r.OnError != "deny" && r.OnError != "local" {
			v.add("redis.on_error", "must be deny or local, not %q", r.OnError)
		}
	}
	if c.Limits.MaxHeaderBytes < 1024 {
		v.add("limits.max_header_bytes", "must be at least 1024")
	}
	if c.Limits.MaxBodyBytes < 1024 {
		v.add("limits.max_body_bytes", "must be at least 1024")
	}
	if !validHeaderName(c.IdentityHeader) {
		v.add("identity_header", "invalid header name %q", c.IdentityHeader)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.add("log.level", "must be debug, info, warn or error")
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		v.add("log.format", "must be json or text")
	}
	if g := c.Guard; g != nil {
		v.guard(g)
	}
	return errors.Join(v.errs...)
}

type validator struct {
	c    *Config
	errs []error
}

func (v *validator) add(field, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	loc := v.c.path
	if loc == "" {
		loc = "config"
	}
	if l := v.c.Line(field); l > 0 {
		loc = fmt.Sprintf("%s:%d", loc, l)
	}
	v.errs = append(v.errs, fmt.Errorf("%s: %s: %s", loc, field, msg))
}

func (v *validator) hostPort(field, addr string) {
	if addr == "" {
		v.add(field, "required")
		return
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		v.add(field, "must be host:port, got %q", addr)
	}
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b == '-' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z') {
			return false
		}
	}
	return true
}

// guardContexts and guardCategories mirror internal/guard's names (config
// imports no runtime package).
var (
	guardContexts   = []string{"user", "tool_output", "tool_description", "document", "response"}
	guardCategories = []string{"prompt_injection", "secret", "pii"}
)

func (v *validator) guard(g *Guard) {
	if g.FailMode != "closed" && g.FailMode != "open" {
		v.add("guard.fail_mode", "must be closed or open, not %q", g.FailMode)
	}
	if g.Timeout < 0 {
		v.add("guard.timeout", "must not be negative")
	}
	if g.MaxBytes < 0 {
		v.add("guard.max_bytes", "must not be negative")
	}
	for i, d := range g.Disable {
		if !slices.Contains(guardCategories, d) {
			v.add(fmt.Sprintf("guard.disable[%d]", i), "unknown category %q (want one of %s)", d, strings.Join(guardCategories, ", "))
		}
	}
	if g.StreamWindow < 256 || g.StreamWindow > 4096 {
		v.add("guard.stream_window", "must be between 256 and 4096 bytes (a smaller window lets a secret split across chunks through; a larger one costs CPU on every chunk)")
	}
	if r := g.Remote; r != nil {
		u, err := url.Parse(r.URL)
		switch {
		case r.URL == "":
			v.add("guard.remote.url", "is required")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			v.add("guard.remote.url", "want an http or https URL, not %q", r.URL)
		}
		if r.FailMode != "closed" && r.FailMode != "open" {
			v.add("guard.remote.fail_mode", "must be closed or open, not %q", r.FailMode)
		}
		if r.Timeout < 0 {
			v.add("guard.remote.timeout", "must not be negative")
		} else if r.Timeout >= g.Timeout {
			v.add("guard.remote.timeout", "%v leaves no time in guard.timeout (%v) for the offline detectors; raise guard.timeout", r.Timeout, g.Timeout)
		}
		if r.MaxBytes < 0 {
			v.add("guard.remote.max_bytes", "must not be negative")
		}
		for i, k := range r.Contexts {
			if !slices.Contains(guardContexts, k) {
				v.add(fmt.Sprintf("guard.remote.contexts[%d]", i), "unknown context %q (want one of %s)", k, strings.Join(guardContexts, ", "))
			}
		}
	}
	if cp := g.Capture; cp != nil {
		if cp.Path == "" {
			v.add("guard.capture.path", "is required")
		}
		if slices.Contains(g.Disable, "secret") || slices.Contains(g.Disable, "pii") {
			v.add("guard.capture", "needs the secret and pii detectors (guard.disable lists one): bodies are never written unredacted")
		}
		if cp.When != "flagged" && cp.When != "all" {
			v.add("guard.capture.when", "must be flagged or all, not %q", cp.When)
		}
		if cp.Sample <= 0 || cp.Sample > 1 {
			v.add("guard.capture.sample", "must be in (0, 1] (capturing every request is a choice to write down)")
		}
		if cp.MaxBodyBytes < 0 || cp.MaxFileBytes < 0 {
			v.add("guard.capture", "sizes must not be negative")
		}
	}
	for k, t := range g.Thresholds {
		f := "guard.thresholds." + k
		if !slices.Contains(guardContexts, k) {
			v.add(f, "unknown context %q (want one of %s)", k, strings.Join(guardContexts, ", "))
		}
		if t.PromptInjection < 0 || t.Secret < 0 || t.PII < 0 {
			v.add(f, "thresholds must not be negative")
		}
	}
}
