package identity

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
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
