// Package devca is a tiny SPIFFE certificate authority for one machine: the
// quickstart, local development and tests. It mints X.509-SVIDs in the
// spiffe-helper file layout and JWT-SVIDs with the SPIFFE JWKS bundle a
// verifier needs, so Warden can be tried without a SPIRE deployment.
//
// It is not a production CA: keys live in plain files, there is no
// attestation, no revocation and no rotation of the CA itself. Use SPIRE
// (see docs/spire.md) for anything shared between machines.
package devca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// File names inside a CA directory and an SVID output directory. The SVID
// names are the spiffe-helper defaults, which is what identity's file source
// reads.
const (
	CACertFile    = "ca.pem"
	CAKeyFile     = "ca_key.pem"
	JWTKeyFile    = "jwt_key.pem"
	JWTBundleFile = "jwt_bundle.json"

	SVIDFile      = "svid.pem"
	SVIDKeyFile   = "svid_key.pem"
	SVIDBundle    = "svid_bundle.pem"
	JWTSVIDFile   = "jwt_svid.token"
	DefaultTTL    = time.Hour
	DefaultCATTL  = 365 * 24 * time.Hour
	DefaultJWTTTL = time.Hour
)

// ErrExists is returned by Init when the directory already holds a CA, so a
// second init never silently replaces the keys agents were issued from.
var ErrExists = errors.New("devca: CA already exists")

// CA is an in-memory dev CA: one ECDSA P-256 key signing X.509-SVIDs and a
// second one signing JWT-SVIDs (as SPIRE does, the two are kept apart so a
// JWT key leak cannot mint certificates).
type CA struct {
	trustDomain spiffeid.TrustDomain
	cert        *x509.Certificate
	key         *ecdsa.PrivateKey
	jwtKey      *ecdsa.PrivateKey
	jwtKeyID    string
	now         func() time.Time
}

// Options tune New. The zero value is a CA valid for a year from now.
type Options struct {
	// Now is the clock (default time.Now). Tests move it to mint SVIDs that
	// are expired or not yet valid.
	Now func() time.Time
	// TTL is the CA certificate's lifetime. Default one year.
	TTL time.Duration
}

// New creates a fresh CA for td in memory.
func New(td spiffeid.TrustDomain, opts Options) (*CA, error) {
	if td.IsZero() {
		return nil, errors.New("devca: trust domain required")
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	ttl := opts.TTL
	if ttl <= 0 {
		ttl = DefaultCATTL
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("devca: generate CA key: %w", err)
	}
	jwtKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("devca: generate JWT key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	start := now().Add(-time.Minute).Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Warden dev CA"}, CommonName: td.Name()},
		NotBefore:             start,
		NotAfter:              start.Add(ttl),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs:                  []*url.URL{td.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("devca: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("devca: parse CA certificate: %w", err)
	}
	return fromParts(td, cert, key, jwtKey, now)
}

func fromParts(td spiffeid.TrustDomain, cert *x509.Certificate, key, jwtKey *ecdsa.PrivateKey, now func() time.Time) (*CA, error) {
	kid, err := keyID(&jwtKey.PublicKey)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &CA{trustDomain: td, cert: cert, key: key, jwtKey: jwtKey, jwtKeyID: kid, now: now}, nil
}

// keyID derives a stable kid from the public key (RFC 7638 thumbprint), so
// re-loading the CA yields the same kid as the bundle file on disk.
func keyID(pub *ecdsa.PublicKey) (string, error) {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("devca: JWT key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("devca: serial: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil
}

// TrustDomain is the CA's trust domain.
func (ca *CA) TrustDomain() spiffeid.TrustDomain { return ca.trustDomain }

// Certificate is the CA certificate (the X.509 trust anchor).
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// X509Bundle is the trust bundle verifiers need for X.509-SVIDs of this CA.
func (ca *CA) X509Bundle() *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(ca.trustDomain, []*x509.Certificate{ca.cert})
}

// JWTBundle is the bundle verifiers need for JWT-SVIDs of this CA.
func (ca *CA) JWTBundle() *jwtbundle.Bundle {
	return jwtbundle.FromJWTAuthorities(ca.trustDomain, map[string]crypto.PublicKey{ca.jwtKeyID: &ca.jwtKey.PublicKey})
}

// JWTKeyID is the kid JWT-SVIDs of this CA carry.
func (ca *CA) JWTKeyID() string { return ca.jwtKeyID }

// MarshalJWTBundle encodes the JWT bundle as a SPIFFE bundle (JWKS with
// "use": "jwt-svid"), the format of config identity.jwt_bundles files.
func (ca *CA) MarshalJWTBundle() ([]byte, error) {
	b, err := spiffebundle.FromJWTBundle(ca.JWTBundle()).Marshal()
	if err != nil {
		return nil, fmt.Errorf("devca: marshal JWT bundle: %w", err)
	}
	return b, nil
}

// X509Options tune one X.509-SVID. The zero value is a one-hour SVID valid
// from now.
type X509Options struct {
	// TTL is the lifetime. Default one hour.
	TTL time.Duration
	// NotBefore overrides the start of validity (default: now minus a few
	// seconds for clock skew). Tests set it in the past or the future to
	// mint expired or not-yet-valid SVIDs; NotAfter is NotBefore+TTL.
	NotBefore time.Time
	// DNSNames are added as DNS SANs, so the SVID can also serve as a
	// server certificate to clients that verify host names (the demo
	// upstream). The SPIFFE ID stays the only URI SAN.
	DNSNames []string
}

// IssueX509 mints an X.509-SVID for id, which must be in the CA's trust
// domain. The key is a fresh ECDSA P-256 key.
func (ca *CA) IssueX509(id spiffeid.ID, opts X509Options) (*x509svid.SVID, error) {
	if !id.MemberOf(ca.trustDomain) {
		return nil, fmt.Errorf("devca: %s is not in trust domain %s", id, ca.trustDomain)
	}
	ttl := opts.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	start := opts.NotBefore
	if start.IsZero() {
		start = ca.now().Add(-10 * time.Second)
	}
	start = start.Truncate(time.Second)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("devca: generate SVID key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Warden dev CA"}},
		NotBefore:             start,
		NotAfter:              start.Add(ttl),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:                  []*url.URL{id.URL()},
		DNSNames:              opts.DNSNames,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("devca: sign SVID for %s: %w", id, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("devca: parse SVID: %w", err)
	}
	return &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{cert}, PrivateKey: key}, nil
}

// JWTOptions tune one JWT-SVID.
type JWTOptions struct {
	// TTL is the lifetime. Default one hour.
	TTL time.Duration
	// IssuedAt overrides iat (default now); exp is IssuedAt+TTL. Tests set
	// it in the past to mint expired tokens.
	IssuedAt time.Time
	// NotBefore, if set, adds an nbf claim.
	NotBefore time.Time
}

// IssueJWT mints a JWT-SVID (ES256, kid = the CA's JWT key id) for id with
// the given audiences (at least one: a JWT-SVID without an audience can be
// replayed against any service).
func (ca *CA) IssueJWT(id spiffeid.ID, audience []string, opts JWTOptions) (string, error) {
	if !id.MemberOf(ca.trustDomain) {
		return "", fmt.Errorf("devca: %s is not in trust domain %s", id, ca.trustDomain)
	}
	if len(audience) == 0 {
		return "", errors.New("devca: JWT-SVID needs at least one audience")
	}
	ttl := opts.TTL
	if ttl <= 0 {
		ttl = DefaultJWTTTL
	}
	iat := opts.IssuedAt
	if iat.IsZero() {
		iat = ca.now()
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: ca.jwtKey},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), ca.jwtKeyID))
	if err != nil {
		return "", fmt.Errorf("devca: JWT signer: %w", err)
	}
	claims := jwt.Claims{
		Subject:  id.String(),
		Audience: jwt.Audience(audience),
		IssuedAt: jwt.NewNumericDate(iat),
		Expiry:   jwt.NewNumericDate(iat.Add(ttl)),
	}
	if !opts.NotBefore.IsZero() {
		claims.NotBefore = jwt.NewNumericDate(opts.NotBefore)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("devca: sign JWT-SVID for %s: %w", id, err)
	}
	return tok, nil
}

// Init creates a CA for td and writes it to dir (created 0700 if missing):
// ca.pem, ca_key.pem (0600), jwt_key.pem (0600) and jwt_bundle.json. It
// refuses to overwrite an existing CA (ErrExists).
func Init(dir string, td spiffeid.TrustDomain) (*CA, error) {
	if _, err := os.Stat(filepath.Join(dir, CAKeyFile)); err == nil {
		return nil, fmt.Errorf("%w in %s", ErrExists, dir)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("devca: %w", err)
	}
	ca, err := New(td, Options{})
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("devca: create %s: %w", dir, err)
	}
	caKey, err := marshalKey(ca.key)
	if err != nil {
		return nil, err
	}
	jwtKey, err := marshalKey(ca.jwtKey)
	if err != nil {
		return nil, err
	}
	jwks, err := ca.MarshalJWTBundle()
	if err != nil {
		return nil, err
	}
	// Keys first, certificate last: a CA directory with ca.pem is complete.
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{CAKeyFile, caKey, 0o600},
		{JWTKeyFile, jwtKey, 0o600},
		{JWTBundleFile, jwks, 0o644},
		{CACertFile, pemCerts(ca.cert), 0o644},
	}
	for _, f := range files {
		if err := WriteFileAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return nil, err
		}
	}
	return ca, nil
}

// Load reads a CA written by Init. The trust domain comes from the CA
// certificate's URI SAN.
func Load(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("devca: load CA: %w", err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("devca: %s: no CERTIFICATE block", filepath.Join(dir, CACertFile))
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("devca: parse %s: %w", CACertFile, err)
	}
	if len(cert.URIs) != 1 {
		return nil, fmt.Errorf("devca: %s: want exactly one URI SAN (the trust domain)", CACertFile)
	}
	td, err := spiffeid.TrustDomainFromURI(cert.URIs[0])
	if err != nil {
		return nil, fmt.Errorf("devca: %s: %w", CACertFile, err)
	}
	key, err := loadKey(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, err
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("devca: %s does not match %s", CAKeyFile, CACertFile)
	}
	jwtKey, err := loadKey(filepath.Join(dir, JWTKeyFile))
	if err != nil {
		return nil, err
	}
	return fromParts(td, cert, key, jwtKey, time.Now)
}

func loadKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("devca: load key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("devca: %s: no PRIVATE KEY block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("devca: parse %s: %w", path, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("devca: %s: want an ECDSA key, got %T", path, k)
	}
	return ek, nil
}

func marshalKey(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("devca: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func pemCerts(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// WriteSVID writes svid and the bundle into dir in the spiffe-helper layout
// (svid.pem, svid_key.pem 0600, svid_bundle.pem). Each file is replaced
// atomically; readers may still see a mix of old and new files between two
// renames, which identity's file source tolerates (it keeps the old SVID
// until key and certificate match).
func WriteSVID(dir string, svid *x509svid.SVID, bundle *x509bundle.Bundle) error {
	certPEM, keyPEM, err := svid.Marshal()
	if err != nil {
		return fmt.Errorf("devca: marshal SVID: %w", err)
	}
	bundlePEM, err := bundle.Marshal()
	if err != nil {
		return fmt.Errorf("devca: marshal bundle: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("devca: create %s: %w", dir, err)
	}
	if err := WriteFileAtomic(filepath.Join(dir, SVIDBundle), bundlePEM, 0o644); err != nil {
		return err
	}
	if err := WriteFileAtomic(filepath.Join(dir, SVIDKeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, SVIDFile), certPEM, 0o644)
}

// WriteFileAtomic writes data to a temporary file in the same directory and
// renames it over path, so a reader never sees a truncated file.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("devca: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("devca: write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("devca: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("devca: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("devca: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("devca: write %s: %w", path, err)
	}
	return nil
}

// Fingerprint is the SHA-256 of a certificate, for printing.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return fmt.Sprintf("%X", sum[:])
}

// Signer returns the CA's X.509 signing key, for tests that craft
// certificates the CA would refuse to issue (an ID of another trust
// domain, a CA flag on a leaf).
func (ca *CA) Signer() crypto.Signer { return ca.key }
