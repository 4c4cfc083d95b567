package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// ServerOptions configure a data-plane (or admin) listener.
type ServerOptions struct {
	// TrustDomains are the trust domains whose callers are accepted. Each
	// must also be known to the Source (own or federated). Empty accepts
	// nobody.
	TrustDomains []spiffeid.TrustDomain
	// RequireClientCert makes the X.509-SVID mandatory (an mTLS listener).
	// When false (a JWT-only listener behind an L7 hop) a presented
	// certificate is still fully verified and a bad one refused.
	RequireClientCert bool
	// MinVersion is the lowest TLS version. Default tls.VersionTLS13.
	MinVersion uint16
	// Now is the clock for certificate validity. Default time.Now.
	Now func() time.Time
}

// ServerTLSConfig returns the TLS config of a listener that serves Warden's
// current SVID and authenticates callers by X.509-SVID.
//
// Rotation: the server certificate is looked up per handshake
// (GetCertificate) and the client CA pool is rebuilt from the Source's
// bundles whenever they change (GetConfigForClient), so a new SVID or bundle
// applies to the next handshake without a restart and without touching
// established connections.
//
// Verification happens twice, by design. crypto/tls verifies the chain
// against the union of the accepted trust domains' roots, which fills
// ConnectionState.VerifiedChains (the only thing PeerFromTLS reads) and,
// on TLS 1.3 resumption, re-checks the ticket's chain against the current
// pool. VerifyConnection then applies the SPIFFE rules per trust domain
// (the leaf's trust domain must be accepted and its own bundle must sign
// it, so one domain's CA cannot vouch for another's IDs) at the current
// time and bundle. crypto/tls skips VerifyPeerCertificate on resumed
// sessions but always runs VerifyConnection, so a resumed session is
// re-authorized against today's trust, not the trust at ticket time.
//
// NextProtos defaults to h2 and http/1.1; to change it, or any other
// field, set it on the returned config before the first handshake.
func ServerTLSConfig(src Source, opts ServerOptions) *tls.Config {
	s := &tlsServer{
		src:     src,
		tds:     slices.Clone(opts.TrustDomains),
		require: opts.RequireClientCert,
		now:     opts.Now,
		certs:   certCache{src: src},
	}
	if s.now == nil {
		s.now = time.Now
	}
	minVersion := opts.MinVersion
	if minVersion == 0 {
		minVersion = tls.VersionTLS13
	}
	s.base = &tls.Config{
		MinVersion:         minVersion,
		NextProtos:         []string{"h2", "http/1.1"},
		GetCertificate:     s.certs.getCertificate,
		GetConfigForClient: s.configForClient,
		VerifyConnection:   s.verifyConnection,
		ClientAuth:         s.clientAuth(),
		Time:               s.now,
	}
	return s.base
}

type tlsServer struct {
	src     Source
	tds     []spiffeid.TrustDomain
	require bool
	now     func() time.Time
	certs   certCache
	base    *tls.Config
	derived atomic.Pointer[derivedConfig]
}

type derivedConfig struct {
	bundles []*x509bundle.Bundle
	cfg     *tls.Config
}

func (s *tlsServer) clientAuth() tls.ClientAuthType {
	if s.require {
		return tls.RequireAndVerifyClientCert
	}
	return tls.VerifyClientCertIfGiven
}

// currentBundles returns the bundles of the accepted trust domains that the
// source has now (a trust domain without a bundle accepts nobody).
func (s *tlsServer) currentBundles() []*x509bundle.Bundle {
	out := make([]*x509bundle.Bundle, 0, len(s.tds))
	for _, td := range s.tds {
		if b, err := s.src.GetX509BundleForTrustDomain(td); err == nil && b != nil {
			out = append(out, b)
		}
	}
	return out
}

// configForClient returns the per-handshake config: the base config with
// the client CA pool of the current bundles. It is rebuilt only when a
// bundle changed.
func (s *tlsServer) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	bundles := s.currentBundles()
	if d := s.derived.Load(); d != nil && sameBundles(d.bundles, bundles) {
		return d.cfg, nil
	}
	pool := x509.NewCertPool()
	for _, b := range bundles {
		for _, c := range b.X509Authorities() {
			pool.AddCert(c)
		}
	}
	cfg := s.base.Clone()
	cfg.GetConfigForClient = nil
	cfg.ClientCAs = pool
	cfg.ClientAuth = s.clientAuth()
	s.derived.Store(&derivedConfig{bundles: bundles, cfg: cfg})
	return cfg, nil
}

func sameBundles(a, b []*x509bundle.Bundle) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// verifyConnection runs on every handshake, full or resumed.
func (s *tlsServer) verifyConnection(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		if s.require {
			return fmt.Errorf("%w: %w", errHandshake, ErrNoPeerCertificate)
		}
		return nil
	}
	if len(cs.VerifiedChains) == 0 {
		return fmt.Errorf("%w: %w", errHandshake, ErrNoPeerCertificate)
	}
	if _, err := verifySVID(cs.PeerCertificates, s.src, s.tds, s.now()); err != nil {
		return fmt.Errorf("%w: client %w", errHandshake, err)
	}
	return nil
}

// errHandshake prefixes every refusal made by Warden's TLS hooks so the
// handshake error log can be told apart and classified.
var errHandshake = errors.New("identity: handshake refused")

// verifySVID applies the SPIFFE X.509-SVID rules: the leaf's trust domain
// is one of tds, and that domain's current bundle (not any other's) signs
// the chain, valid at now.
func verifySVID(certs []*x509.Certificate, src x509bundle.Source, tds []spiffeid.TrustDomain, now time.Time) (spiffeid.ID, error) {
	id, err := x509svid.IDFromCert(certs[0])
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("%w: %v", ErrInvalidCredentials, err)
	}
	if !slices.Contains(tds, id.TrustDomain()) {
		return id, fmt.Errorf("%w: %s", ErrTrustDomainNotAccepted, id)
	}
	if _, _, err := x509svid.Verify(certs, src, x509svid.WithTime(now)); err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return id, fmt.Errorf("%w: %s: %v", ErrExpired, id, err)
		}
		if errors.Is(err, ErrTrustDomainNotAccepted) {
			return id, fmt.Errorf("%w: %s", ErrTrustDomainNotAccepted, id)
		}
		return id, fmt.Errorf("%w: %s: %v", ErrInvalidCredentials, id, err)
	}
	return id, nil
}

// ClientTLSConfig returns the TLS config for the upstream hop: Warden
// presents its current SVID and accepts the server only if it proves
// exactly the SPIFFE ID upstream, verified against the Source's bundle for
// that ID's trust domain at the current time. Host names and WebPKI roots
// play no part (SPIFFE authenticates by ID), which is why normal
// verification is replaced rather than extended.
func ClientTLSConfig(src Source, upstream spiffeid.ID) *tls.Config {
	certs := &certCache{src: src}
	tds := []spiffeid.TrustDomain{upstream.TrustDomain()}
	return &tls.Config{
		MinVersion:           tls.VersionTLS12,
		GetClientCertificate: certs.getClientCertificate,
		// Replaced by VerifyConnection below, which crypto/tls runs on every
		// handshake including resumed ones.
		InsecureSkipVerify: true, //nolint:gosec // SPIFFE verification in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			if upstream.IsZero() {
				return fmt.Errorf("%w: no upstream SPIFFE ID configured", errHandshake)
			}
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%w: upstream sent no certificate", errHandshake)
			}
			id, err := verifySVID(cs.PeerCertificates, src, tds, time.Now())
			if err != nil {
				return fmt.Errorf("%w: upstream %w", errHandshake, err)
			}
			if id != upstream {
				return fmt.Errorf("%w: upstream is %s, want %s", errHandshake, id, upstream)
			}
			return nil
		},
	}
}

// certCache turns the source's current SVID into a tls.Certificate, once
// per SVID rather than once per handshake.
type certCache struct {
	src Source
	cur atomic.Pointer[cachedCert]
}

type cachedCert struct {
	svid *x509svid.SVID
	cert *tls.Certificate
}

func (c *certCache) get() (*tls.Certificate, error) {
	svid, err := c.src.GetX509SVID()
	if err != nil {
		return nil, fmt.Errorf("identity: own SVID: %w", err)
	}
	if cc := c.cur.Load(); cc != nil && cc.svid == svid {
		return cc.cert, nil
	}
	cert := &tls.Certificate{PrivateKey: svid.PrivateKey, Leaf: svid.Certificates[0]}
	for _, x := range svid.Certificates {
		cert.Certificate = append(cert.Certificate, x.Raw)
	}
	c.cur.Store(&cachedCert{svid: svid, cert: cert})
	return cert, nil
}

func (c *certCache) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.get()
}

func (c *certCache) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return c.get()
}
