package identity

import (
	"crypto/tls"
	"net"
	"net/http"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/wardenhq/warden/internal/identity/devca"
)

func verifiedState(t testing.TB, s *setup) *tls.ConnectionState {
	svid := issue(t, s.ca, agentID, devca.X509Options{})
	_, chains, err := x509svid.Verify(svid.Certificates, s.ca.X509Bundle())
	if err != nil {
		t.Fatal(err)
	}
	return &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: svid.Certificates, VerifiedChains: chains}
}

func identityHeadersSample() http.Header {
	return http.Header{
		"Content-Type": {"application/json"}, "Accept": {"*/*"}, "User-Agent": {"agent/1.0"},
		"Authorization": {"Bearer x"}, "X-Request-Id": {"abc"}, "Content-Length": {"42"},
		"Accept-Encoding": {"gzip"}, "X-Forwarded-For": {"10.0.0.1"},
	}
}

// Per-request pieces stay within a fixed allocation budget.
func TestPerRequestAllocs(t *testing.T) {
	s := newSetup(t)
	cs := verifiedState(t, s)
	if n := testing.AllocsPerRun(100, func() { PeerFromTLS(cs) }); n > 4 {
		t.Errorf("PeerFromTLS: %v allocs, budget 4", n)
	}
	h := identityHeadersSample()
	if n := testing.AllocsPerRun(100, func() { StripIdentityHeaders(h, "X-Warden-Spiffe-Id") }); n != 0 {
		t.Errorf("StripIdentityHeaders: %v allocs, budget 0", n)
	}
	cfg := ServerTLSConfig(s.src, ServerOptions{TrustDomains: []spiffeid.TrustDomain{tdWarden}})
	cfg.GetConfigForClient(nil)
	if n := testing.AllocsPerRun(100, func() { cfg.GetConfigForClient(nil) }); n > 1 {
		t.Errorf("GetConfigForClient (bundles unchanged): %v allocs, budget 1", n)
	}
	if n := testing.AllocsPerRun(100, func() { cfg.GetCertificate(nil) }); n != 0 {
		t.Errorf("GetCertificate (SVID unchanged): %v allocs, budget 0", n)
	}
}

func BenchmarkPeerFromTLS(b *testing.B) {
	cs := verifiedState(b, newSetup(b))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := PeerFromTLS(cs); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStripIdentityHeaders(b *testing.B) {
	h := identityHeadersSample()
	b.ReportAllocs()
	for b.Loop() {
		StripIdentityHeaders(h, "X-Warden-Spiffe-Id")
	}
}

func BenchmarkJWTVerify(b *testing.B) {
	s := newJWTSetup(b)
	v := NewJWTVerifier(s.src, []string{"warden"}, []spiffeid.TrustDomain{tdWarden})
	tok := mint(b, s.ca, agentID, []string{"warden"}, devca.JWTOptions{})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandshake measures a full mTLS 1.3 handshake (ECDSA P-256, both
// sides verifying SPIFFE IDs) and a resumed one, over loopback TCP
// (net.Pipe deadlocks TLS 1.3 ticket writes).
func BenchmarkHandshake(b *testing.B) {
	s := newSetup(b)
	serverCfg := ServerTLSConfig(s.src, ServerOptions{TrustDomains: []spiffeid.TrustDomain{tdWarden}, RequireClientCert: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				srv := tls.Server(c, serverCfg)
				if srv.Handshake() == nil {
					// A byte makes the client read, and so take the ticket.
					srv.Write([]byte{1})
				}
			}()
		}
	}()
	agent := issue(b, s.ca, agentID, devca.X509Options{})
	run := func(b *testing.B, cache tls.ClientSessionCache) {
		clientCfg := agentTLS(agent, s.bundles)
		clientCfg.ClientSessionCache = cache
		resumed := 0
		b.ReportAllocs()
		for b.Loop() {
			cl, err := tls.Dial("tcp", ln.Addr().String(), clientCfg)
			if err != nil {
				b.Fatal(err)
			}
			var buf [1]byte
			if _, err := cl.Read(buf[:]); err != nil {
				b.Fatal(err)
			}
			if cl.ConnectionState().DidResume {
				resumed++
			}
			cl.Close()
		}
		if cache != nil && resumed == 0 {
			b.Fatal("no handshake resumed")
		}
	}
	b.Run("full", func(b *testing.B) { run(b, nil) })
	b.Run("resumed", func(b *testing.B) { run(b, tls.NewLRUClientSessionCache(1)) })
}
