package identity

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/wardenhq/warden/internal/identity/devca"
)

// bearerCase is one golden file in testdata/bearer: "header: <value>" and
// either "token: <want>" or "error: <substring>".
type bearerCase struct {
	name, header, token, err string
}

func bearerCorpus(t testing.TB) []bearerCase {
	t.Helper()
	files, err := filepath.Glob("testdata/bearer/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bearer corpus: %v", err)
	}
	var out []bearerCase
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		header, rest, ok := strings.Cut(string(b), "\n")
		if !ok || !strings.HasPrefix(header, "header: ") {
			t.Fatalf("%s: want 'header: ' line", f)
		}
		c := bearerCase{name: strings.TrimSuffix(filepath.Base(f), ".txt"), header: strings.TrimPrefix(header, "header: ")}
		switch {
		case strings.HasPrefix(rest, "token: "):
			c.token = strings.TrimPrefix(rest, "token: ")
		case strings.HasPrefix(rest, "error: "):
			c.err = strings.TrimPrefix(rest, "error: ")
		default:
			t.Fatalf("%s: want 'token: ' or 'error: ' line", f)
		}
		out = append(out, c)
	}
	return out
}

func TestParseBearerGolden(t *testing.T) {
	for _, c := range bearerCorpus(t) {
		t.Run(c.name, func(t *testing.T) {
			tok, err := parseBearer(c.header)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("parseBearer(%q) = %q, %v; want error containing %q", c.header, tok, err, c.err)
				}
				return
			}
			if err != nil || tok != c.token {
				t.Fatalf("parseBearer(%q) = %q, %v; want %q", c.header, tok, err, c.token)
			}
		})
	}
}

// FuzzParseBearer: never panics; whatever it accepts is a non-empty
// b64token suffix of the header that re-parses to itself; FromRequest on
// any header never authenticates without a verifiable token.
func FuzzParseBearer(f *testing.F) {
	for _, c := range bearerCorpus(f) {
		f.Add(c.header)
	}
	v := NewJWTVerifier(emptyJWTBundles{}, []string{"warden"}, []spiffeid.TrustDomain{tdWarden})
	f.Fuzz(func(t *testing.T, h string) {
		tok, err := parseBearer(h)
		if err == nil {
			if tok == "" || !strings.HasSuffix(h, tok) || len(tok) > MaxTokenBytes {
				t.Fatalf("parseBearer(%q) = %q", h, tok)
			}
			again, err := parseBearer("Bearer " + tok)
			if err != nil || again != tok {
				t.Fatalf("re-parse of %q: %q, %v", tok, again, err)
			}
		}
		r := &http.Request{Header: http.Header{"Authorization": {h}}}
		if p, err := v.FromRequest(r); err == nil {
			t.Fatalf("authenticated %v with no keys from %q", p, h)
		}
	})
}

type emptyJWTBundles struct{}

func (emptyJWTBundles) GetJWTBundleForTrustDomain(td spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	return nil, notAccepted(td)
}

func jwksCorpus(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("testdata/jwks/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no JWKS corpus: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = b
	}
	return out
}

// TestParseJWTBundleGolden: files named ok_* parse to a non-empty bundle,
// bad_* are refused.
func TestParseJWTBundleGolden(t *testing.T) {
	for name, data := range jwksCorpus(t) {
		t.Run(name, func(t *testing.T) {
			b, err := parseJWTBundle(tdWarden, data)
			if strings.HasPrefix(name, "ok_") {
				if err != nil || b.Empty() {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted %d keys", len(b.JWTAuthorities()))
			}
		})
	}
}

// FuzzParseJWTBundle: never panics; an accepted bundle is non-empty, holds
// only RSA/ECDSA keys and survives a marshal/parse round trip.
func FuzzParseJWTBundle(f *testing.F) {
	for _, data := range jwksCorpus(f) {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := parseJWTBundle(tdWarden, data)
		if err != nil {
			return
		}
		if b.Empty() {
			t.Fatal("accepted an empty bundle")
		}
		if _, err := checkJWTKeys(b); err != nil {
			t.Fatal(err)
		}
		m, err := b.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseJWTBundle(tdWarden, m)
		if err != nil || !again.Equal(b) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzVerifyToken: arbitrary tokens never verify without a key and never
// panic the verifier.
func FuzzVerifyToken(f *testing.F) {
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJzcGlmZmU6Ly93YXJkZW4udGVzdC9hIn0.")
	f.Add("a.b.c")
	for _, c := range bearerCorpus(f) {
		if c.token != "" {
			f.Add(c.token)
		}
	}
	v := NewJWTVerifier(emptyJWTBundles{}, []string{"warden"}, []spiffeid.TrustDomain{tdWarden})
	f.Fuzz(func(t *testing.T, tok string) {
		if p, err := v.Verify(tok); err == nil {
			t.Fatalf("verified %v", p)
		}
	})
}

// ownFilesCases builds the spiffe-helper file sets parseOwnFiles must
// accept or refuse. They are generated rather than kept in testdata so no
// private key is committed (secret scanners rightly flag them).
func ownFilesCases(t testing.TB) map[string][3][]byte {
	c, _ := ownFilesCasesWithCA(t)
	return c
}

func ownFilesCasesWithCA(t testing.TB) (map[string][3][]byte, *devca.CA) {
	t.Helper()
	ca, other, evil := newCA(t, tdWarden), newCA(t, tdWarden), newCA(t, tdEvil)
	s1 := issue(t, ca, wardenID, devca.X509Options{})
	s2 := issue(t, ca, wardenID, devca.X509Options{})
	e := issue(t, evil, spiffeid.RequireFromPath(tdEvil, "/w"), devca.X509Options{})
	oldCA, err := devca.New(tdWarden, devca.Options{Now: func() time.Time { return time.Now().Add(-72 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	expired := issue(t, oldCA, wardenID, devca.X509Options{NotBefore: time.Now().Add(-48 * time.Hour)})
	marshal := func(s *x509svid.SVID, b *x509bundle.Bundle) [3][]byte {
		c, k, err := s.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		bb, err := b.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return [3][]byte{c, k, bb}
	}
	ok := marshal(s1, ca.X509Bundle())
	cases := map[string][3][]byte{
		"ok":                        ok,
		"ok_expired_but_consistent": marshal(expired, oldCA.X509Bundle()),
		"bad_wrong_bundle":          marshal(s1, other.X509Bundle()),
		"bad_other_trust_domain":    marshal(e, evil.X509Bundle()),
		"bad_key_mismatch":          {ok[0], marshal(s2, ca.X509Bundle())[1], ok[2]},
		"bad_truncated_cert":        {ok[0][:len(ok[0])/2], ok[1], ok[2]},
		"bad_empty_bundle":          {ok[0], ok[1], nil},
		"bad_key_is_cert":           {ok[0], ok[0], ok[2]},
		// spiffe-helper's include_federated_domains: the partner CA must not
		// become an authority for warden.test.
		"ok_foreign_ca_dropped": {ok[0], ok[1], append(append([]byte{}, ok[2]...), marshal(e, evil.X509Bundle())[2]...)},
		"bad_only_foreign_ca":   {marshal(e, evil.X509Bundle())[0], ok[1], marshal(e, evil.X509Bundle())[2]},
	}
	return cases, evil
}

func TestParseOwnFiles(t *testing.T) {
	cases, evil := ownFilesCasesWithCA(t)
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			svid, bundle, err := parseOwnFiles(tdWarden, c[0], c[1], c[2])
			if strings.HasPrefix(name, "ok") {
				if err != nil || svid.ID != wardenID || bundle.Empty() {
					t.Fatalf("refused: %v", err)
				}
				for _, c := range bundle.X509Authorities() {
					if c.Equal(evil.Certificate()) {
						t.Fatal("foreign CA kept in the own bundle")
					}
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// FuzzParseOwnFiles: never panics; an accepted set is an SVID of the trust
// domain whose key matches and whose chain reaches the bundle.
func FuzzParseOwnFiles(f *testing.F) {
	for _, c := range ownFilesCases(f) {
		f.Add(c[0], c[1], c[2])
	}
	f.Fuzz(func(t *testing.T, cert, key, bundle []byte) {
		svid, b, err := parseOwnFiles(tdWarden, cert, key, bundle)
		if err != nil {
			return
		}
		if !svid.ID.MemberOf(tdWarden) || b.Empty() {
			t.Fatalf("accepted %v with bundle of %d", svid.ID, len(b.X509Authorities()))
		}
		leaf := svid.Certificates[0]
		mid := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
		_, _, errMid := x509svid.Verify(svid.Certificates, b, x509svid.WithTime(mid))
		_, _, errNow := x509svid.Verify(svid.Certificates, b)
		if errMid != nil && errNow != nil {
			t.Fatal(errMid)
		}
	})
}
