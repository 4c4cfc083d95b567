package identity

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"

	"github.com/wardenhq/warden/internal/protocol"
)

// MaxTokenBytes bounds a bearer token. JWT-SVIDs are a few hundred bytes;
// anything near this is an attack on the parser, refused before parsing.
const MaxTokenBytes = 8 << 10

// JWTVerifier authenticates JWT-SVID bearer tokens
// (https://github.com/spiffe/spiffe/blob/main/standards/JWT-SVID.md) for
// agents that reach Warden through an L7 hop that terminates their TLS. It
// is safe for concurrent use.
type JWTVerifier struct {
	bundles   jwtbundle.Source
	audiences []string
	tds       []spiffeid.TrustDomain
	now       func() time.Time
	metrics   *Metrics
}

// NewJWTVerifier returns a verifier that accepts JWT-SVIDs signed by a key
// in bundles, issued to one of trustDomains, and addressed to at least one
// of audiences. With no audiences or no trust domains every token is
// refused: a JWT-SVID verified without an audience check could be one
// replayed from any other service.
func NewJWTVerifier(bundles jwtbundle.Source, audiences []string, trustDomains []spiffeid.TrustDomain) *JWTVerifier {
	return &JWTVerifier{
		bundles:   bundles,
		audiences: slices.Clone(audiences),
		tds:       slices.Clone(trustDomains),
		now:       time.Now,
	}
}

// WithClock returns a copy of v that judges expiry at now() (on top of
// go-jose's own wall-clock check, which allows a minute of skew).
func (v *JWTVerifier) WithClock(now func() time.Time) *JWTVerifier {
	c := *v
	c.now = now
	return &c
}

// WithMetrics returns a copy of v that counts refusals in m.
func (v *JWTVerifier) WithMetrics(m *Metrics) *JWTVerifier {
	c := *v
	c.metrics = m
	return &c
}

// FromRequest authenticates "Authorization: Bearer <JWT-SVID>". A missing
// header wraps ErrNoCredentials; a header that is not exactly one Bearer
// compact JWS wraps ErrMalformedCredentials. All errors are
// *protocol.Error (401, unauthenticated) whose message is safe to send.
func (v *JWTVerifier) FromRequest(r *http.Request) (Peer, error) {
	vals := r.Header.Values("Authorization")
	switch len(vals) {
	case 0:
		return Peer{}, v.fail(ErrNoCredentials, "missing bearer token", nil)
	case 1:
	default:
		return Peer{}, v.fail(ErrMalformedCredentials, "malformed bearer token", errors.New("more than one Authorization header"))
	}
	tok, err := parseBearer(vals[0])
	if err != nil {
		return Peer{}, v.fail(ErrMalformedCredentials, "malformed bearer token", err)
	}
	return v.Verify(tok)
}

// Verify authenticates one JWT-SVID.
func (v *JWTVerifier) Verify(token string) (Peer, error) {
	if err := checkCompactJWS(token); err != nil {
		return Peer{}, v.fail(ErrMalformedCredentials, "malformed bearer token", err)
	}
	if len(v.audiences) == 0 || len(v.tds) == 0 || v.bundles == nil {
		return Peer{}, v.fail(ErrInvalidCredentials, "invalid JWT-SVID", errors.New("verifier has no audience, trust domain or bundle configured"))
	}
	rb := &restrictedJWT{src: v.bundles, tds: v.tds}
	svid, err := jwtsvid.ParseAndValidate(token, rb, v.audiences)
	if err != nil {
		switch {
		case rb.refused:
			return Peer{}, v.fail(ErrTrustDomainNotAccepted, "JWT-SVID trust domain not accepted", err)
		case isExpiry(err):
			return Peer{}, v.fail(ErrExpired, "JWT-SVID expired or not yet valid", err)
		}
		return Peer{}, v.fail(ErrInvalidCredentials, "invalid JWT-SVID", err)
	}
	// go-jose judged time with the wall clock and a minute of leeway; the
	// injected clock decides, without leeway on exp.
	now := v.now()
	if !now.Before(svid.Expiry) {
		return Peer{}, v.fail(ErrExpired, "JWT-SVID expired or not yet valid", fmt.Errorf("exp %s is not after %s", svid.Expiry.Format(time.RFC3339), now.Format(time.RFC3339)))
	}
	if nbf, ok := svid.Claims["nbf"].(float64); ok && now.Add(time.Minute).Before(time.Unix(int64(nbf), 0)) {
		return Peer{}, v.fail(ErrExpired, "JWT-SVID expired or not yet valid", errors.New("nbf is in the future"))
	}
	if !slices.Contains(v.tds, svid.ID.TrustDomain()) {
		return Peer{}, v.fail(ErrTrustDomainNotAccepted, "JWT-SVID trust domain not accepted", fmt.Errorf("%s", svid.ID))
	}
	return Peer{ID: svid.ID, Method: MethodJWT, ExpiresAt: svid.Expiry}, nil
}

func isExpiry(err error) bool {
	// jwtsvid returns go-jose's nbf/iat sentinels as they are but replaces
	// ErrExpired by its own text.
	return errors.Is(err, jwt.ErrNotValidYet) || errors.Is(err, jwt.ErrIssuedInTheFuture) ||
		errors.Is(err, jwt.ErrExpired) || strings.HasSuffix(err.Error(), "token has expired")
}

func (v *JWTVerifier) fail(kind error, msg string, cause error) error {
	v.metrics.observeJWT(kind)
	err := kind
	if cause != nil {
		err = fmt.Errorf("%w: %v", kind, cause)
	}
	return &protocol.Error{Status: http.StatusUnauthorized, Code: protocol.CodeUnauthenticated, Message: msg, Err: err}
}

// restrictedJWT hands jwtsvid only the bundles of the accepted trust
// domains, so a token from another domain is refused before any key lookup.
// jwtsvid replaces the lookup error by its own text, so the refusal is
// remembered here to report the right reason.
type restrictedJWT struct {
	src     jwtbundle.Source
	tds     []spiffeid.TrustDomain
	refused bool
}

func (r *restrictedJWT) GetJWTBundleForTrustDomain(td spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	if !slices.Contains(r.tds, td) {
		r.refused = true
		return nil, notAccepted(td)
	}
	return r.src.GetJWTBundleForTrustDomain(td)
}

// parseBearer extracts the token from an Authorization header value:
// the scheme "Bearer" (case-insensitive, RFC 7235 §2.1), one or more
// spaces, and a b64token (RFC 6750 §2.1). Nothing may follow.
func parseBearer(h string) (string, error) {
	const scheme = "bearer"
	if len(h) < len(scheme)+1 || !equalFold(h[:len(scheme)], scheme) || h[len(scheme)] != ' ' {
		return "", errors.New(`want "Bearer <token>"`)
	}
	tok := h[len(scheme):]
	for len(tok) > 0 && tok[0] == ' ' {
		tok = tok[1:]
	}
	if tok == "" {
		return "", errors.New("empty token")
	}
	if len(tok) > MaxTokenBytes {
		return "", fmt.Errorf("token longer than %d bytes", MaxTokenBytes)
	}
	// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
	end := len(tok)
	for end > 0 && tok[end-1] == '=' {
		end--
	}
	if end == 0 {
		return "", errors.New("token is not a b64token")
	}
	for i := 0; i < end; i++ {
		c := tok[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			return "", errors.New("token is not a b64token")
		}
	}
	return tok, nil
}

// checkCompactJWS accepts only the JWS compact serialization: three
// non-empty base64url segments (a JWE has five; "alg: none" tokens have an
// empty signature and are refused here already, and again by jwtsvid's
// algorithm allow-list).
func checkCompactJWS(tok string) error {
	if len(tok) > MaxTokenBytes {
		return fmt.Errorf("token longer than %d bytes", MaxTokenBytes)
	}
	seg, n := 0, 0
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c == '.':
			if n == 0 {
				return errors.New("token has an empty segment")
			}
			seg++
			n = 0
		case c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_':
			n++
		default:
			return errors.New("token is not base64url compact JWS")
		}
	}
	if seg != 2 || n == 0 {
		return errors.New("token is not a compact JWS (want three segments)")
	}
	return nil
}

// containsFold reports whether s contains substr, ASCII case-insensitively.
func containsFold(s, substr string) bool {
	for i := 0; i+len(substr) <= len(s); i++ {
		if equalFold(s[i:i+len(substr)], substr) {
			return true
		}
	}
	return false
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
