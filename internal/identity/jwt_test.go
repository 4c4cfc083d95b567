package identity

import (
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/identity/devca"
	"github.com/wardenhq/warden/internal/protocol"
)

// jwtSetup is a files Source with JWT bundles for warden.test and the
// federated partner.test, loaded from jwt_bundle.json files as written by
// "warden ca init".
type jwtSetup struct {
	ca, partner, evil *devca.CA
	src               Source
}

func newJWTSetup(t testing.TB) *jwtSetup {
	t.Helper()
	s := &jwtSetup{ca: newCA(t, tdWarden), partner: newCA(t, tdPartner), evil: newCA(t, tdEvil)}
	dir := tempDir(t, "svid")
	writeWarden(t, dir, s.ca, nil)
	files := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pb, _ := s.partner.X509Bundle().Marshal()
	ownJWKS, err := s.ca.MarshalJWTBundle()
	if err != nil {
		t.Fatal(err)
	}
	partnerJWKS, err := s.partner.MarshalJWTBundle()
	if err != nil {
		t.Fatal(err)
	}
	cfg := fileSourceCfg(dir, config.FederatedBundle{TrustDomain: tdPartner.Name(), BundleFile: write("partner.pem", pb)})
	cfg.JWTBundles = []config.JWTBundleFile{
		{TrustDomain: tdWarden.Name(), File: write("own.json", ownJWKS)},
		{TrustDomain: tdPartner.Name(), File: write("partner.json", partnerJWKS)},
	}
	s.src = newSource(t, cfg)
	return s
}

func mint(t testing.TB, ca *devca.CA, id spiffeid.ID, aud []string, opts devca.JWTOptions) string {
	t.Helper()
	tok, err := ca.IssueJWT(id, aud, opts)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestJWTVerify(t *testing.T) {
	s := newJWTSetup(t)
	aud := []string{"warden"}
	partnerAgent := spiffeid.RequireFromPath(tdPartner, "/agent")
	valid := mint(t, s.ca, agentID, aud, devca.JWTOptions{})
	parts := strings.Split(valid, ".")
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[len(sig)/2] ^= 0x01
	badSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	algNone := noneHeader + "." + parts[1] + "."
	algNoneWithSig := noneHeader + "." + parts[1] + "." + parts[2]
	hsHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"` + s.ca.JWTKeyID() + `","typ":"JWT"}`))
	algHS := hsHeader + "." + parts[1] + "." + parts[2]

	both := []spiffeid.TrustDomain{tdWarden, tdPartner}
	tests := []struct {
		name   string
		tok    string
		tds    []spiffeid.TrustDomain
		aud    []string
		wantID spiffeid.ID
		kind   error
	}{
		{"valid", valid, both, aud, agentID, nil},
		{"valid, one of several audiences", mint(t, s.ca, agentID, []string{"other", "warden"}, devca.JWTOptions{}), both, aud, agentID, nil},
		{"valid federated", mint(t, s.partner, partnerAgent, aud, devca.JWTOptions{}), both, aud, partnerAgent, nil},
		{"wrong audience", mint(t, s.ca, agentID, []string{"someone-else"}, devca.JWTOptions{}), both, aud, spiffeid.ID{}, ErrInvalidCredentials},
		{"verifier without audience", valid, both, nil, spiffeid.ID{}, ErrInvalidCredentials},
		{"expired", mint(t, s.ca, agentID, aud, devca.JWTOptions{IssuedAt: time.Now().Add(-2 * time.Hour)}), both, aud, spiffeid.ID{}, ErrExpired},
		{"not yet valid", mint(t, s.ca, agentID, aud, devca.JWTOptions{NotBefore: time.Now().Add(time.Hour)}), both, aud, spiffeid.ID{}, ErrExpired},
		{"other trust domain", mint(t, s.evil, spiffeid.RequireFromPath(tdEvil, "/x"), aud, devca.JWTOptions{}), both, aud, spiffeid.ID{}, ErrTrustDomainNotAccepted},
		{"federated, not on this verifier", mint(t, s.partner, partnerAgent, aud, devca.JWTOptions{}), []spiffeid.TrustDomain{tdWarden}, aud, spiffeid.ID{}, ErrTrustDomainNotAccepted},
		{"unknown key (same trust domain, other CA)", mint(t, newCA(t, tdWarden), agentID, aud, devca.JWTOptions{}), both, aud, spiffeid.ID{}, ErrInvalidCredentials},
		{"bad signature", badSig, both, aud, spiffeid.ID{}, ErrInvalidCredentials},
		{"alg none", algNone, both, aud, spiffeid.ID{}, ErrMalformedCredentials},
		{"alg none with a signature", algNoneWithSig, both, aud, spiffeid.ID{}, ErrInvalidCredentials},
		{"alg HS256 (key confusion)", algHS, both, aud, spiffeid.ID{}, ErrInvalidCredentials},
		{"JWE shape", "a.b.c.d.e", both, aud, spiffeid.ID{}, ErrMalformedCredentials},
		{"empty", "", both, aud, spiffeid.ID{}, ErrMalformedCredentials},
		{"oversized", strings.Repeat("a", MaxTokenBytes) + ".b.c", both, aud, spiffeid.ID{}, ErrMalformedCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := NewJWTVerifier(s.src, tt.aud, tt.tds)
			p, err := v.Verify(tt.tok)
			if tt.kind == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if p.ID != tt.wantID || p.Method != MethodJWT || p.ExpiresAt.IsZero() {
					t.Fatalf("peer %+v, want %s", p, tt.wantID)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted as %s", p.ID)
			}
			if !errors.Is(err, tt.kind) {
				t.Fatalf("error %v, want %v", err, tt.kind)
			}
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Status != http.StatusUnauthorized || pe.Code != protocol.CodeUnauthenticated {
				t.Fatalf("want a 401 protocol.Error, got %#v", err)
			}
			if strings.Contains(pe.Message, tt.tok) && tt.tok != "" {
				t.Fatal("client message echoes the token")
			}
		})
	}
}

func TestJWTInjectedClock(t *testing.T) {
	s := newJWTSetup(t)
	tok := mint(t, s.ca, agentID, []string{"warden"}, devca.JWTOptions{TTL: 10 * time.Minute})
	v := NewJWTVerifier(s.src, []string{"warden"}, []spiffeid.TrustDomain{tdWarden})
	if _, err := v.Verify(tok); err != nil {
		t.Fatal(err)
	}
	// go-jose alone would accept this for another minute of leeway; the
	// injected clock is after exp and decides.
	late := v.WithClock(func() time.Time { return time.Now().Add(10*time.Minute + time.Second) })
	if _, err := late.Verify(tok); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired by the injected clock, got %v", err)
	}
}

func TestJWTFromRequest(t *testing.T) {
	s := newJWTSetup(t)
	v := NewJWTVerifier(s.src, []string{"warden"}, []spiffeid.TrustDomain{tdWarden})
	tok := mint(t, s.ca, agentID, []string{"warden"}, devca.JWTOptions{})
	tests := []struct {
		name    string
		headers []string
		kind    error
	}{
		{"bearer", []string{"Bearer " + tok}, nil},
		{"lower-case scheme, two spaces", []string{"bearer  " + tok}, nil},
		{"missing", nil, ErrNoCredentials},
		{"basic", []string{"Basic dXNlcjpwYXNz"}, ErrMalformedCredentials},
		{"no token", []string{"Bearer "}, ErrMalformedCredentials},
		{"two headers", []string{"Bearer " + tok, "Bearer " + tok}, ErrMalformedCredentials},
		{"trailing garbage", []string{"Bearer " + tok + " x"}, ErrMalformedCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest("GET", "https://warden.test/", nil)
			for _, h := range tt.headers {
				r.Header.Add("Authorization", h)
			}
			p, err := v.FromRequest(r)
			if tt.kind == nil {
				if err != nil || p.ID != agentID {
					t.Fatalf("got %v, %v", p.ID, err)
				}
				return
			}
			if !errors.Is(err, tt.kind) {
				t.Fatalf("error %v, want %v", err, tt.kind)
			}
		})
	}
}

func TestStripIdentityHeaders(t *testing.T) {
	h := http.Header{}
	for _, k := range []string{
		"X-Forwarded-Client-Cert", "X-Spiffe-Id", "x_spiffe_id", "X-Client-Cert", "X-Client-Cert-Chain",
		"X-Forwarded-User", "X-Forwarded-Email", "X-Remote-User", "X-Auth-Request-User",
		"X-Auth-Request-Email", "X-Warden-Spiffe-Id", "X-Agent-Identity", "x-agent-identity",
	} {
		h[k] = []string{"spiffe://warden.test/admin"}
	}
	keep := []string{"Content-Type", "Authorization", "X-Request-Id", "X-Forwarded-For", "X-Client", "X-Remote"}
	for _, k := range keep {
		h.Set(k, "v")
	}
	StripIdentityHeaders(h, "X-Agent-Identity")
	if len(h) != len(keep) {
		t.Fatalf("left %v", h)
	}
	for _, k := range keep {
		if h.Get(k) != "v" {
			t.Errorf("removed %s", k)
		}
	}
}
