package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/identity/devca"
)

type setup struct {
	ca, partner *devca.CA
	dir         string
	src         Source
	bundles     *x509bundle.Set // what agents use to verify Warden
}

// newSetup writes Warden's files (own CA) plus a federated partner bundle
// and starts a files Source on them.
func newSetup(t testing.TB) *setup {
	t.Helper()
	s := &setup{ca: newCA(t, tdWarden), partner: newCA(t, tdPartner), dir: tempDir(t, "svid")}
	writeWarden(t, s.dir, s.ca, nil)
	pb, err := s.partner.X509Bundle().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	partnerFile := filepath.Join(t.TempDir(), "partner.pem")
	if err := os.WriteFile(partnerFile, pb, 0o644); err != nil {
		t.Fatal(err)
	}
	s.src = newSource(t, fileSourceCfg(s.dir, config.FederatedBundle{TrustDomain: tdPartner.Name(), BundleFile: partnerFile}))
	s.bundles = x509bundle.NewSet(s.ca.X509Bundle())
	return s
}

func TestHandshakeMatrix(t *testing.T) {
	s := newSetup(t)
	evil := newCA(t, tdEvil)
	rogue := newCA(t, tdWarden) // same trust domain name, not in the bundle
	partnerAgent := spiffeid.RequireFromPath(tdPartner, "/agent")
	hour := time.Hour

	// A leaf claiming a partner.test ID but signed by warden.test's CA: its
	// root is in the listener's pool, so only the per-trust-domain check
	// can refuse it.
	crossSigned := craft(t, s.ca, partnerAgent, false)
	caFlagLeaf := craft(t, s.ca, agentID, true)

	both := []spiffeid.TrustDomain{tdWarden, tdPartner}
	own := []spiffeid.TrustDomain{tdWarden}
	tests := []struct {
		name    string
		tds     []spiffeid.TrustDomain
		require bool
		client  *x509svid.SVID // nil: no client certificate
		wantID  spiffeid.ID    // zero: refused (or no peer without require)
		reason  error
	}{
		{"valid own trust domain", own, true, issue(t, s.ca, agentID, devca.X509Options{}), agentID, nil},
		{"valid federated trust domain", both, true, issue(t, s.partner, partnerAgent, devca.X509Options{}), partnerAgent, nil},
		{"federated trust domain not on this listener", own, true, issue(t, s.partner, partnerAgent, devca.X509Options{}), spiffeid.ID{}, nil},
		{"wrong trust domain", both, true, issue(t, evil, spiffeid.RequireFromPath(tdEvil, "/x"), devca.X509Options{}), spiffeid.ID{}, nil},
		{"untrusted CA", both, true, issue(t, rogue, agentID, devca.X509Options{}), spiffeid.ID{}, nil},
		{"expired SVID", both, true, issue(t, s.ca, agentID, devca.X509Options{NotBefore: time.Now().Add(-2 * hour)}), spiffeid.ID{}, nil},
		{"not yet valid SVID", both, true, issue(t, s.ca, agentID, devca.X509Options{NotBefore: time.Now().Add(hour)}), spiffeid.ID{}, nil},
		{"cross-signed ID of another trust domain", both, true, crossSigned, spiffeid.ID{}, ErrInvalidCredentials},
		{"leaf with CA flag", both, true, caFlagLeaf, spiffeid.ID{}, ErrInvalidCredentials},
		{"no client certificate, required", both, true, nil, spiffeid.ID{}, nil},
		{"no client certificate, optional", both, false, nil, spiffeid.ID{}, nil},
		{"bad certificate, optional", both, false, issue(t, rogue, agentID, devca.X509Options{}), spiffeid.ID{}, nil},
		{"valid certificate, optional", both, false, issue(t, s.ca, agentID, devca.X509Options{}), agentID, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serveRaw(t, ServerTLSConfig(s.src, ServerOptions{TrustDomains: tt.tds, RequireClientCert: tt.require}))
			cfg := agentTLS(tt.client, s.bundles)
			if tt.client == nil {
				cfg.GetClientCertificate = nil
			}
			res, clientErr := srv.dial(t, cfg)
			switch {
			case !tt.wantID.IsZero():
				if res.err != nil || res.peerErr != nil || clientErr != nil {
					t.Fatalf("refused: server %v/%v, client %v", res.err, res.peerErr, clientErr)
				}
				if res.peer.ID != tt.wantID || res.peer.Method != MethodX509 {
					t.Fatalf("peer %+v, want %s", res.peer, tt.wantID)
				}
				if want := tt.client.Certificates[0].NotAfter; !res.peer.ExpiresAt.Equal(want) {
					t.Errorf("ExpiresAt %v, want %v", res.peer.ExpiresAt, want)
				}
			case !tt.require && tt.client == nil:
				if res.err != nil || clientErr != nil {
					t.Fatalf("optional client cert: refused: %v %v", res.err, clientErr)
				}
				if !errors.Is(res.peerErr, ErrNoPeerCertificate) || !res.peer.ID.IsZero() {
					t.Fatalf("no certificate but peer %v (%v)", res.peer.ID, res.peerErr)
				}
			default:
				if res.err == nil {
					t.Fatalf("handshake accepted as %s", res.peer.ID)
				}
				if clientErr == nil {
					t.Fatal("client saw no refusal")
				}
				if tt.reason != nil && !errors.Is(res.err, tt.reason) {
					t.Fatalf("refused with %v, want %v", res.err, tt.reason)
				}
			}
		})
	}
}

// craft signs a certificate with the CA key that the CA would refuse to
// issue.
func craft(t testing.TB, ca *devca.CA, id spiffeid.ID, isCA bool) *x509svid.SVID {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  isCA,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		URIs:                  []*url.URL{id.URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Certificate(), &key.PublicKey, ca.Signer())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{cert}, PrivateKey: key}
}

func TestPeerFromTLSNeedsVerifiedChain(t *testing.T) {
	s := newSetup(t)
	svid := issue(t, s.ca, agentID, devca.X509Options{})
	// Presented but never verified: PeerFromTLS must not believe it.
	cs := &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: svid.Certificates}
	if p, err := PeerFromTLS(cs); !errors.Is(err, ErrNoPeerCertificate) {
		t.Fatalf("unverified certificate became %v (err %v)", p, err)
	}
	if _, err := PeerFromTLS(nil); !errors.Is(err, ErrNoPeerCertificate) {
		t.Fatalf("nil state: %v", err)
	}
	other := issue(t, s.ca, spiffeid.RequireFromPath(tdWarden, "/other"), devca.X509Options{})
	cs.VerifiedChains = [][]*x509.Certificate{{other.Certificates[0], s.ca.Certificate()}}
	if _, err := PeerFromTLS(cs); !errors.Is(err, ErrNoPeerCertificate) {
		t.Fatalf("mismatched verified chain accepted: %v", err)
	}
}

// TestResumption proves that a resumed TLS session carries exactly the
// identity of the certificate it was established with, is re-verified by
// VerifyConnection against the current bundle and clock, and is refused
// once that certificate expired or its trust was withdrawn.
func TestResumption(t *testing.T) {
	t.Run("TLS 1.3", func(t *testing.T) { testResumption(t, tls.VersionTLS13) })
	t.Run("TLS 1.2", func(t *testing.T) { testResumption(t, tls.VersionTLS12) })
}

func testResumption(t *testing.T, version uint16) {
	s := newSetup(t)
	var clk clock
	cfg := ServerTLSConfig(s.src, ServerOptions{TrustDomains: []spiffeid.TrustDomain{tdWarden}, RequireClientCert: true, Now: clk.now, MinVersion: version})
	var verifyCalls, resumedVerifyCalls atomic.Int32
	inner := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		verifyCalls.Add(1)
		if cs.DidResume {
			resumedVerifyCalls.Add(1)
		}
		return inner(cs)
	}
	srv := serveRaw(t, cfg)

	agentA := issue(t, s.ca, agentID, devca.X509Options{})
	clientCfg := func(svid *x509svid.SVID, cache tls.ClientSessionCache) *tls.Config {
		c := agentTLS(svid, s.bundles)
		c.ClientSessionCache = cache
		c.MaxVersion = version
		return c
	}
	cacheA := tls.NewLRUClientSessionCache(4)

	res, err := srv.dial(t, clientCfg(agentA, cacheA))
	if err != nil || res.err != nil || res.resumed {
		t.Fatalf("first connection: %+v %v", res, err)
	}
	res, err = srv.dial(t, clientCfg(agentA, cacheA))
	if err != nil || res.err != nil {
		t.Fatalf("second connection: %+v %v", res, err)
	}
	if !res.resumed {
		t.Fatal("second connection did not resume; the test would prove nothing")
	}
	if res.peer.ID != agentID || !res.peer.ExpiresAt.Equal(agentA.Certificates[0].NotAfter) {
		t.Fatalf("resumed identity %+v, want the certificate's own %s", res.peer, agentID)
	}
	if resumedVerifyCalls.Load() == 0 {
		t.Fatal("VerifyConnection did not run on the resumed handshake")
	}

	t.Run("identity is the session's, not the dialer's", func(t *testing.T) {
		// Another agent's client that somehow holds A's ticket resumes as A
		// (it holds A's resumption secret) — never as itself, and never
		// does A's identity attach to a full handshake by B.
		otherID := spiffeid.RequireFromPath(tdWarden, "/agent/b")
		agentB := issue(t, s.ca, otherID, devca.X509Options{})
		res, err := srv.dial(t, clientCfg(agentB, tls.NewLRUClientSessionCache(4)))
		if err != nil || res.err != nil || res.peer.ID != otherID || res.resumed {
			t.Fatalf("B full handshake: %+v %v", res, err)
		}
	})

	t.Run("refused after expiry", func(t *testing.T) {
		cache := tls.NewLRUClientSessionCache(4)
		short := issue(t, s.ca, spiffeid.RequireFromPath(tdWarden, "/agent/short"), devca.X509Options{TTL: 30 * time.Minute})
		if res, err := srv.dial(t, clientCfg(short, cache)); err != nil || res.err != nil {
			t.Fatalf("first: %+v %v", res, err)
		}
		if res, err := srv.dial(t, clientCfg(short, cache)); err != nil || !res.resumed {
			t.Fatalf("no resumption before expiry: %+v %v", res, err)
		}
		clk.advance(time.Hour)
		defer clk.advance(-time.Hour)
		res, err := srv.dial(t, clientCfg(short, cache))
		if res.err == nil || err == nil {
			t.Fatalf("expired client accepted (resumed=%v) as %v", res.resumed, res.peer.ID)
		}
	})

	t.Run("refused after trust withdrawn", func(t *testing.T) {
		res, err := srv.dial(t, clientCfg(agentA, cacheA))
		if err != nil || !res.resumed {
			t.Fatalf("precondition: resumption works: %+v %v", res, err)
		}
		// Rotate to a new CA: Warden's new SVID and a bundle without the
		// old CA. Agents of the old CA are no longer trusted.
		newCA := newCA(t, tdWarden)
		writeWarden(t, s.dir, newCA, nil)
		eventually(t, "bundle rotation", func() bool {
			b, _ := s.src.GetX509BundleForTrustDomain(tdWarden)
			return b != nil && b.HasX509Authority(newCA.Certificate())
		})
		// The agent trusts both CAs for Warden's server certificate; only
		// the server side's trust changed.
		both := x509bundle.FromX509Authorities(tdWarden, []*x509.Certificate{s.ca.Certificate(), newCA.Certificate()})
		c := agentTLS(agentA, both)
		c.ClientSessionCache = cacheA
		c.MaxVersion = version
		res, err = srv.dial(t, c)
		if res.err == nil || err == nil {
			t.Fatalf("withdrawn client accepted (resumed=%v) as %v", res.resumed, res.peer.ID)
		}
	})
}

// TestVerifyConnectionRefusesResumedWithdrawnTrust drives the resumption
// hook directly with a state as crypto/tls restores it from a ticket,
// independently of crypto/tls' own ticket checks: the chain verified at
// ticket time no longer verifies against the current bundle.
func TestVerifyConnectionRefusesResumedWithdrawnTrust(t *testing.T) {
	s := newSetup(t)
	old := newCA(t, tdWarden)
	svid := issue(t, old, agentID, devca.X509Options{})
	cfg := ServerTLSConfig(s.src, ServerOptions{TrustDomains: []spiffeid.TrustDomain{tdWarden}, RequireClientCert: true})
	cs := tls.ConnectionState{
		DidResume:        true,
		PeerCertificates: svid.Certificates,
		VerifiedChains:   [][]*x509.Certificate{{svid.Certificates[0], old.Certificate()}},
	}
	err := cfg.VerifyConnection(cs)
	if err == nil || !strings.Contains(err.Error(), "handshake refused") {
		t.Fatalf("resumed session of a withdrawn CA accepted: %v", err)
	}
	if HandshakeReason(err.Error()) != "untrusted_authority" {
		t.Errorf("reason %q", HandshakeReason(err.Error()))
	}
}

func TestClientTLSConfigPinsUpstreamID(t *testing.T) {
	s := newSetup(t)
	upstreamID := spiffeid.RequireFromPath(tdWarden, "/upstream/llm")
	upstreamSVID := issue(t, s.ca, upstreamID, devca.X509Options{})
	upDir := tempDir(t, "up")
	if err := devca.WriteSVID(upDir, upstreamSVID, s.ca.X509Bundle()); err != nil {
		t.Fatal(err)
	}
	upCfg := fileSourceCfg(upDir)
	upSrc := newSource(t, upCfg)
	srv := serveRaw(t, ServerTLSConfig(upSrc, ServerOptions{TrustDomains: []spiffeid.TrustDomain{tdWarden}, RequireClientCert: true}))

	res, err := srv.dial(t, ClientTLSConfig(s.src, upstreamID))
	if err != nil || res.err != nil {
		t.Fatalf("mTLS to the right upstream failed: %v %v", err, res.err)
	}
	if res.peer.ID != wardenID {
		t.Fatalf("upstream saw %s, want Warden %s", res.peer.ID, wardenID)
	}
	_, err = srv.dial(t, ClientTLSConfig(s.src, spiffeid.RequireFromPath(tdWarden, "/upstream/other")))
	if err == nil || !strings.Contains(err.Error(), "want spiffe://warden.test/upstream/other") {
		t.Fatalf("wrong upstream ID accepted: %v", err)
	}
	_, err = srv.dial(t, ClientTLSConfig(s.src, spiffeid.RequireFromPath(tdEvil, "/upstream/llm")))
	if err == nil {
		t.Fatal("upstream of an unconfigured trust domain accepted")
	}
}

func TestServerCertificateRotatesWithoutRestart(t *testing.T) {
	s := newSetup(t)
	srv := serveRaw(t, ServerTLSConfig(s.src, ServerOptions{TrustDomains: []spiffeid.TrustDomain{tdWarden}, RequireClientCert: true}))
	agent := issue(t, s.ca, agentID, devca.X509Options{})
	serial := func() *big.Int {
		var got *big.Int
		c := agentTLS(agent, s.bundles)
		c.VerifyConnection = func(cs tls.ConnectionState) error { got = cs.PeerCertificates[0].SerialNumber; return nil }
		if _, err := srv.dial(t, c); err != nil {
			t.Fatal(err)
		}
		return got
	}
	before := serial()
	next := writeWarden(t, s.dir, s.ca, nil)
	eventually(t, "new server certificate", func() bool {
		return serial().Cmp(next.Certificates[0].SerialNumber) == 0
	})
	if before.Cmp(next.Certificates[0].SerialNumber) == 0 {
		t.Fatal("serials equal before rotation")
	}
}
