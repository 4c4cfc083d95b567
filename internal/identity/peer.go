package identity

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Authentication methods, as recorded in Peer.Method, audit records and
// policy input.
const (
	MethodX509 = "x509-svid"
	MethodJWT  = "jwt-svid"
)

// Peer is an authenticated caller. It is only ever built from a verified
// credential; the zero Peer is nobody.
type Peer struct {
	// ID is the caller's SPIFFE ID.
	ID spiffeid.ID
	// Method is MethodX509 or MethodJWT.
	Method string
	// ExpiresAt is when the credential stops being valid. A kept-alive TLS
	// connection outlives its certificate; the gateway refuses requests on
	// it once ExpiresAt has passed (see Expired).
	ExpiresAt time.Time
}

// Expired reports whether the credential is no longer valid at now. The
// zero Peer is always expired.
func (p Peer) Expired(now time.Time) bool {
	return p.ID.IsZero() || !now.Before(p.ExpiresAt)
}

// LogValue logs a Peer with the stable keys; it holds no secret.
func (p Peer) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("spiffe_id", p.ID.String()),
		slog.String("method", p.Method),
		slog.Time("expires_at", p.ExpiresAt),
	)
}

var _ slog.LogValuer = Peer{}

// PeerFromTLS returns the caller of a TLS connection served with
// ServerTLSConfig. It reads only cs.VerifiedChains, which crypto/tls fills
// after verifying the chain (and restores, re-checked, on resumption), so a
// certificate that was merely presented never becomes an identity — even
// with a tls.Config built elsewhere.
func PeerFromTLS(cs *tls.ConnectionState) (Peer, error) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 || len(cs.PeerCertificates) == 0 {
		return Peer{}, ErrNoPeerCertificate
	}
	leaf := cs.VerifiedChains[0][0]
	if !bytes.Equal(leaf.Raw, cs.PeerCertificates[0].Raw) {
		// Cannot happen with crypto/tls; refuse rather than guess.
		return Peer{}, fmt.Errorf("%w: verified chain does not start with the peer certificate", ErrNoPeerCertificate)
	}
	id, err := x509svid.IDFromCert(leaf)
	if err != nil {
		return Peer{}, fmt.Errorf("%w: %v", ErrInvalidCredentials, err)
	}
	// The identity holds while any verified chain holds, and a chain holds
	// until its first certificate expires.
	var expires time.Time
	for _, chain := range cs.VerifiedChains {
		if len(chain) == 0 {
			continue
		}
		end := chain[0].NotAfter
		for _, c := range chain[1:] {
			if c.NotAfter.Before(end) {
				end = c.NotAfter
			}
		}
		if end.After(expires) {
			expires = end
		}
	}
	return Peer{ID: id, Method: MethodX509, ExpiresAt: expires}, nil
}
