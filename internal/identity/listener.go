package identity

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardenhq/warden/internal/config"
)

// Listener authentication methods (config.Listener.Auth).
const (
	AuthMTLS = "mtls"
	AuthJWT  = "jwt"
)

// ListenerOptions derives a listener's ServerOptions from the config, so the
// rules live in one place: trust domains default to Warden's own and each
// must be the own or an explicitly federated one; a listener that accepts
// JWT-SVIDs does not require a client certificate (but verifies one that is
// presented); TLS 1.3 unless "1.2" is asked for; "jwt" needs audiences.
// All problems are reported at once.
func ListenerOptions(id config.Identity, l config.Listener) (ServerOptions, error) {
	var errs []error
	opts := ServerOptions{MinVersion: tls.VersionTLS13, RequireClientCert: true}
	own, err := spiffeid.TrustDomainFromString(id.TrustDomain)
	if err != nil {
		errs = append(errs, fmt.Errorf("identity.trust_domain %q: %w", id.TrustDomain, err))
	}
	known := map[spiffeid.TrustDomain]bool{own: true}
	for _, f := range id.Federation {
		if td, err := spiffeid.TrustDomainFromString(f.TrustDomain); err == nil {
			known[td] = true
		}
	}
	names := l.TrustDomains
	if len(names) == 0 {
		names = []string{id.TrustDomain}
	}
	for _, n := range names {
		td, err := spiffeid.TrustDomainFromString(n)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("listener %q: trust domain %q: %w", l.Name, n, err))
		case !known[td]:
			errs = append(errs, fmt.Errorf("listener %q: trust domain %q is neither Warden's own nor in identity.federation", l.Name, n))
		case !slices.Contains(opts.TrustDomains, td):
			opts.TrustDomains = append(opts.TrustDomains, td)
		}
	}
	for _, a := range l.Auth {
		switch a {
		case AuthMTLS:
		case AuthJWT:
			opts.RequireClientCert = false
			if len(l.JWTAudiences) == 0 {
				errs = append(errs, fmt.Errorf("listener %q: auth jwt needs jwt_audiences", l.Name))
			}
		default:
			errs = append(errs, fmt.Errorf("listener %q: auth %q: want mtls or jwt", l.Name, a))
		}
	}
	switch l.MinTLSVersion {
	case "", "1.3":
	case "1.2":
		opts.MinVersion = tls.VersionTLS12
	default:
		errs = append(errs, fmt.Errorf("listener %q: min_tls_version %q: want 1.2 or 1.3", l.Name, l.MinTLSVersion))
	}
	if err := errors.Join(errs...); err != nil {
		return ServerOptions{}, fmt.Errorf("identity: %w", err)
	}
	return opts, nil
}

// AcceptsJWT reports whether the listener authenticates JWT-SVID bearer
// tokens (then build a JWTVerifier with its jwt_audiences and trust
// domains).
func AcceptsJWT(l config.Listener) bool { return slices.Contains(l.Auth, AuthJWT) }
