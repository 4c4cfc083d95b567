// Package benchenv is the set-up the bench/ programs share: a dev trust
// domain in a temp dir, SVIDs for Warden, an agent and an upstream, a
// running gateway built from a backend snippet and a roles file, and agent
// clients that speak HTTP/1.1 keep-alive with a large pool.
package benchenv

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/devenv"
	"github.com/wardenhq/warden/internal/gateway"
)

// The identities every bench uses.
var (
	WardenID   = spiffeid.RequireFromString("spiffe://warden.test/warden")
	UpstreamID = spiffeid.RequireFromString("spiffe://warden.test/upstream/app")
	AgentID    = spiffeid.RequireFromString("spiffe://warden.test/agent/bench")
)

// Env is a bench environment. Close removes everything.
type Env struct {
	Dev      *devenv.Env
	Agent    *x509svid.SVID
	Upstream *x509svid.SVID
	Gateway  *gateway.Gateway
	dir      string
	cancel   context.CancelFunc
	// Extra is appended to the config Start writes (e.g. a guard section).
	Extra string
}

// New creates the trust domain and the SVIDs.
func New() (*Env, error) {
	dir, err := os.MkdirTemp("", "warden-bench-")
	if err != nil {
		return nil, err
	}
	e := &Env{dir: dir, cancel: func() {}}
	if e.Dev, err = devenv.New(dir, spiffeid.RequireTrustDomainFromString("warden.test")); err != nil {
		e.Close()
		return nil, err
	}
	if _, err = e.Dev.Mint("warden", WardenID, "localhost"); err == nil {
		if e.Agent, err = e.Dev.Mint("agent", AgentID); err == nil {
			e.Upstream, err = e.Dev.Mint("upstream", UpstreamID, "localhost")
		}
	}
	if err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// Start writes roles and a config with one backend "app" of kind at url and
// a route / to it, and runs the gateway (log level error).
func (e *Env) Start(kind, url, roles, auditMode string) error {
	if err := os.WriteFile(filepath.Join(e.dir, "roles.yaml"), []byte(roles), 0o644); err != nil {
		return err
	}
	cfgYAML := fmt.Sprintf(`identity:
  trust_domain: warden.test
  files: {dir: svids/warden}
listeners: [{name: data, address: "127.0.0.1:0"}]
backends:
  - name: app
    kind: %s
    url: %s
    tls: {spiffe_id: "spiffe://warden.test/upstream/app"}
routes: [{path_prefix: /, backend: app}]
policy: {data: [roles.yaml]}
audit: {path: audit/audit.jsonl, mode: %s}
log: {level: error}
`, kind, url, auditMode) + e.Extra
	cfgPath := filepath.Join(e.dir, "warden.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfgYAML), 0o644); err != nil {
		return err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, err := gateway.New(ctx, cfg, gateway.Options{})
	if err != nil {
		cancel()
		return err
	}
	e.Gateway, e.cancel = g, cancel
	go func() { _ = g.Run(ctx) }()
	return nil
}

// URL is Warden's data listener base URL.
func (e *Env) URL() string { return "https://" + e.Gateway.Addr("data") }

// Client is the agent's HTTP/1.1 keep-alive client for server, with a pool
// large enough that an open-loop load never waits for a handshake (Go's
// default keeps only 2 idle connections per host).
func (e *Env) Client(server spiffeid.ID) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     e.Dev.ClientTLS(e.Agent, server),
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
		MaxIdleConnsPerHost: 4096,
		MaxIdleConns:        4096,
	}}
}

// Close stops the gateway and the servers and removes the directory.
func (e *Env) Close() {
	e.cancel()
	if e.Gateway != nil {
		e.Gateway.Close()
	}
	if e.Dev != nil {
		e.Dev.Close()
	}
	_ = os.RemoveAll(e.dir)
}
