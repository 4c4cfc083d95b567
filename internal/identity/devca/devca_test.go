package devca_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/wardenhq/warden/internal/identity/devca"
)

var td = spiffeid.RequireTrustDomainFromString("warden.test")

func TestInitLoadIssue(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := devca.Init(dir, td)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{devca.CAKeyFile, devca.JWTKeyFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	if _, err := devca.Init(dir, td); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second Init: %v, want ErrExists", err)
	}
	loaded, err := devca.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.TrustDomain() != td || loaded.JWTKeyID() != ca.JWTKeyID() || !loaded.Certificate().Equal(ca.Certificate()) {
		t.Fatalf("Load does not round-trip: %v %q", loaded.TrustDomain(), loaded.JWTKeyID())
	}

	id := spiffeid.RequireFromPath(td, "/agent")
	svid, err := loaded.IssueX509(id, devca.X509Options{DNSNames: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := devca.WriteSVID(out, svid, loaded.X509Bundle()); err != nil {
		t.Fatal(err)
	}
	parsed, err := x509svid.Load(filepath.Join(out, devca.SVIDFile), filepath.Join(out, devca.SVIDKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := x509bundle.Load(td, filepath.Join(out, devca.SVIDBundle))
	if err != nil {
		t.Fatal(err)
	}
	gotID, _, err := x509svid.Verify(parsed.Certificates, bundle)
	if err != nil || gotID != id {
		t.Fatalf("issued SVID does not verify: %v %v", gotID, err)
	}
	leaf := parsed.Certificates[0]
	if ttl := leaf.NotAfter.Sub(leaf.NotBefore); ttl < devca.DefaultTTL || ttl > devca.DefaultTTL+time.Minute {
		t.Errorf("TTL %v, want about %v", ttl, devca.DefaultTTL)
	}
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "localhost" || len(leaf.URIs) != 1 {
		t.Errorf("SANs: dns %v uris %v", leaf.DNSNames, leaf.URIs)
	}
	if fi, _ := os.Stat(filepath.Join(out, devca.SVIDKeyFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("svid_key.pem mode %v, want 0600", fi.Mode().Perm())
	}

	// The JWT bundle written at init verifies JWT-SVIDs of the loaded CA.
	tok, err := loaded.IssueJWT(id, []string{"warden"}, devca.JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := spiffebundle.Load(td, filepath.Join(dir, devca.JWTBundleFile))
	if err != nil {
		t.Fatal(err)
	}
	jsvid, err := jwtsvid.ParseAndValidate(tok, sb, []string{"warden"})
	if err != nil || jsvid.ID != id {
		t.Fatalf("JWT-SVID does not verify with jwt_bundle.json: %v %v", jsvid, err)
	}
}

func TestIssueRefusesForeignIDAndNoAudience(t *testing.T) {
	ca, err := devca.New(td, devca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	other := spiffeid.RequireFromString("spiffe://other.test/x")
	if _, err := ca.IssueX509(other, devca.X509Options{}); err == nil {
		t.Error("IssueX509 accepted an ID of another trust domain")
	}
	if _, err := ca.IssueJWT(other, []string{"a"}, devca.JWTOptions{}); err == nil {
		t.Error("IssueJWT accepted an ID of another trust domain")
	}
	if _, err := ca.IssueJWT(spiffeid.RequireFromPath(td, "/a"), nil, devca.JWTOptions{}); err == nil {
		t.Error("IssueJWT accepted no audience")
	}
}

func TestExpiredAndFutureSVIDs(t *testing.T) {
	ca, err := devca.New(td, devca.Options{Now: func() time.Time { return time.Now().Add(-48 * time.Hour) }, TTL: 96 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	id := spiffeid.RequireFromPath(td, "/a")
	for name, nb := range map[string]time.Time{
		"expired": time.Now().Add(-3 * time.Hour),
		"future":  time.Now().Add(3 * time.Hour),
	} {
		svid, err := ca.IssueX509(id, devca.X509Options{NotBefore: nb})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := x509svid.Verify(svid.Certificates, ca.X509Bundle()); err == nil {
			t.Errorf("%s SVID verified now", name)
		}
		if _, _, err := x509svid.Verify(svid.Certificates, ca.X509Bundle(), x509svid.WithTime(nb.Add(time.Minute))); err != nil {
			t.Errorf("%s SVID does not verify within its validity: %v", name, err)
		}
	}
}
