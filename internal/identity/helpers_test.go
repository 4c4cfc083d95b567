package identity

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/identity/devca"
)

var (
	tdWarden  = spiffeid.RequireTrustDomainFromString("warden.test")
	tdPartner = spiffeid.RequireTrustDomainFromString("partner.test")
	tdEvil    = spiffeid.RequireTrustDomainFromString("evil.test")
	wardenID  = spiffeid.RequireFromPath(tdWarden, "/warden")
	agentID   = spiffeid.RequireFromPath(tdWarden, "/agent/a")
)

func testLog(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newCA(t testing.TB, td spiffeid.TrustDomain) *devca.CA {
	t.Helper()
	ca, err := devca.New(td, devca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t testing.TB, ca *devca.CA, id spiffeid.ID, opts devca.X509Options) *x509svid.SVID {
	t.Helper()
	svid, err := ca.IssueX509(id, opts)
	if err != nil {
		t.Fatal(err)
	}
	return svid
}

// writeWarden writes Warden's SVID files into dir and returns the SVID.
func writeWarden(t testing.TB, dir string, ca *devca.CA, bundle *x509bundle.Bundle) *x509svid.SVID {
	t.Helper()
	svid := issue(t, ca, wardenID, devca.X509Options{DNSNames: []string{"localhost"}})
	if bundle == nil {
		bundle = ca.X509Bundle()
	}
	if err := devca.WriteSVID(dir, svid, bundle); err != nil {
		t.Fatal(err)
	}
	return svid
}

// fileSourceCfg is a files-source config for dir with a short poll.
func fileSourceCfg(dir string, fed ...config.FederatedBundle) config.Identity {
	return config.Identity{
		TrustDomain: tdWarden.Name(),
		Source:      "files",
		Files:       &config.IdentityFiles{Dir: dir, PollInterval: 50 * time.Millisecond},
		Federation:  fed,
	}
}

func newSource(t testing.TB, cfg config.Identity) Source {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src, err := NewSource(ctx, cfg, "", testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// serveHTTPS runs an http.Server with cfg on 127.0.0.1 and answers every
// request with the caller's SPIFFE ID (or 401).
func serveHTTPS(t testing.TB, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		TLSConfig: cfg,
		ErrorLog:  (*Metrics)(nil).ErrorLog(testLog(t)),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, err := PeerFromTLS(r.TLS)
			if err != nil {
				http.Error(w, err.Error(), http.StatusUnauthorized)
				return
			}
			io.WriteString(w, p.ID.String())
		}),
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// agentTLS is an agent's client config: its SVID, and Warden authorized by
// exact ID, as a go-spiffe client would do it.
func agentTLS(svid *x509svid.SVID, bundle x509bundle.Source) *tls.Config {
	return tlsconfig.MTLSClientConfig(svid, bundle, tlsconfig.AuthorizeID(wardenID))
}

// tlsServer accepts raw TLS connections with cfg and reports, per
// connection, the Peer or the handshake error.
type rawServer struct {
	addr    string
	results chan rawResult
}

type rawResult struct {
	peer    Peer
	resumed bool
	err     error // handshake
	peerErr error // PeerFromTLS
}

func serveRaw(t testing.TB, cfg *tls.Config) *rawServer {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &rawServer{addr: ln.Addr().String(), results: make(chan rawResult, 16)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if err := tc.Handshake(); err != nil {
					s.results <- rawResult{err: err}
					return
				}
				cs := tc.ConnectionState()
				p, err := PeerFromTLS(&cs)
				s.results <- rawResult{peer: p, resumed: cs.DidResume, peerErr: err}
				// Write so the client reads (and so processes the session
				// ticket, sent after the handshake in TLS 1.3).
				io.WriteString(tc, "ok\n")
				io.Copy(io.Discard, tc)
			}()
		}
	}()
	return s
}

// dialRaw connects, completes the handshake and reads the server's line. In
// TLS 1.3 a client certificate refused by the server shows up on that read.
func (s *rawServer) dial(t testing.TB, cfg *tls.Config) (rawResult, error) {
	t.Helper()
	c, err := tls.Dial("tcp", s.addr, cfg)
	var clientErr error
	if err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 3)
		_, clientErr = io.ReadFull(c, buf)
		c.Close()
	} else {
		clientErr = err
	}
	select {
	case r := <-s.results:
		return r, clientErr
	case <-time.After(5 * time.Second):
		t.Fatal("server saw no connection")
	}
	return rawResult{}, errors.New("unreachable")
}

// clock is an injectable, settable time.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func tempDir(t testing.TB, name string) string {
	return filepath.Join(t.TempDir(), name)
}
