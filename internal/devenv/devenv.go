// Package devenv is a one-machine SPIFFE environment built on the dev CA:
// mint SVIDs in the spiffe-helper layout, make mTLS clients for agents, and
// serve upstreams that accept only Warden. The quickstart runs on it, and so
// do the end-to-end tests of every protocol, so both exercise the same real
// certificates and TLS as production (only the CA differs from SPIRE).
package devenv

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/wardenhq/warden/internal/identity/devca"
)

// Env is a dev trust domain rooted in Dir.
type Env struct {
	Dir string
	CA  *devca.CA

	mu      sync.Mutex
	servers []*http.Server
}

// New loads the CA under dir/ca or creates one for td.
func New(dir string, td spiffeid.TrustDomain) (*Env, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	caDir := filepath.Join(dir, "ca")
	ca, err := devca.Load(caDir)
	if err != nil {
		if ca, err = devca.Init(caDir, td); err != nil {
			return nil, fmt.Errorf("devenv: %w", err)
		}
	}
	return &Env{Dir: dir, CA: ca}, nil
}

// SVIDDir is where Mint writes name's files.
func (e *Env) SVIDDir(name string) string { return filepath.Join(e.Dir, "svids", name) }

// Mint issues a day-long X.509-SVID for id and writes it with the bundle to
// SVIDDir(name). DNS names make it usable as a server certificate too.
func (e *Env) Mint(name string, id spiffeid.ID, dns ...string) (*x509svid.SVID, error) {
	svid, err := e.CA.IssueX509(id, devca.X509Options{TTL: 24 * time.Hour, DNSNames: dns})
	if err != nil {
		return nil, err
	}
	return svid, devca.WriteSVID(e.SVIDDir(name), svid, e.CA.X509Bundle())
}

// Client is an agent's HTTP client: it presents svid and accepts only server.
func (e *Env) Client(svid *x509svid.SVID, server spiffeid.ID) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   e.ClientTLS(svid, server),
		ForceAttemptHTTP2: true,
	}}
}

// ClientTLS is the TLS config behind Client.
func (e *Env) ClientTLS(svid *x509svid.SVID, server spiffeid.ID) *tls.Config {
	return tlsconfig.MTLSClientConfig(svid, e.CA.X509Bundle(), tlsconfig.AuthorizeID(server))
}

// NoCertClient verifies the server but presents no certificate.
func (e *Env) NoCertClient(server spiffeid.ID) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: tlsconfig.TLSClientConfig(e.CA.X509Bundle(), tlsconfig.AuthorizeID(server)),
	}}
}

// Serve runs h on 127.0.0.1 with mTLS: it presents svid and accepts only the
// client ID (Warden). It returns the address.
func (e *Env) Serve(svid *x509svid.SVID, client spiffeid.ID, h http.Handler) (string, error) {
	tc := tlsconfig.MTLSServerConfig(svid, e.CA.X509Bundle(), tlsconfig.AuthorizeID(client))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	e.mu.Lock()
	e.servers = append(e.servers, srv)
	e.mu.Unlock()
	go func() { _ = srv.Serve(tls.NewListener(ln, tc)) }()
	return ln.Addr().String(), nil
}

// Close stops every server started by Serve.
func (e *Env) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.servers {
		_ = s.Close()
	}
	e.servers = nil
}
