// Package identity establishes who is calling Warden, from cryptography
// only, following the SPIFFE specifications
// (https://github.com/spiffe/spiffe/tree/main/standards).
//
// Warden's own X.509-SVID and the trust bundles it accepts come from a
// Source: the SPIFFE Workload API (a SPIRE agent) or PEM files in the
// spiffe-helper layout, re-read when they change. ServerTLSConfig turns a
// Source into a data-plane listener that requires (or, for JWT listeners,
// verifies when presented) a client X.509-SVID from exactly the configured
// trust domains, re-verified against the current bundle and clock on every
// handshake including resumed ones. PeerFromTLS and JWTVerifier turn a
// verified connection or a JWT-SVID bearer token into a Peer;
// ClientTLSConfig authenticates Warden to an upstream and pins the
// upstream's SPIFFE ID.
//
// Nothing here trusts a header, a trust domain that was not named in the
// configuration, or a certificate that was not verified.
package identity
