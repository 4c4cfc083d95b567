package identity

import "errors"

// Sentinel errors. Authentication failures returned by JWTVerifier are
// *protocol.Error values (401, "unauthenticated") that wrap one of these, so
// the gateway can map them without string matching and still log the cause.
var (
	// ErrNoPeerCertificate means the connection carries no verified client
	// X.509-SVID.
	ErrNoPeerCertificate = errors.New("identity: no verified client certificate")
	// ErrNoCredentials means the request carries no Authorization header.
	ErrNoCredentials = errors.New("identity: no credentials")
	// ErrMalformedCredentials means the Authorization header is not
	// "Bearer <compact JWS>".
	ErrMalformedCredentials = errors.New("identity: malformed credentials")
	// ErrInvalidCredentials means a credential failed verification
	// (signature, audience, unknown key, bad SVID).
	ErrInvalidCredentials = errors.New("identity: invalid credentials")
	// ErrExpired means the credential is outside its validity period.
	ErrExpired = errors.New("identity: credential expired or not yet valid")
	// ErrTrustDomainNotAccepted means the credential is from a trust domain
	// this listener (or Warden) was not configured to accept.
	ErrTrustDomainNotAccepted = errors.New("identity: trust domain not accepted")
	// ErrClosed is returned by a Source after Close.
	ErrClosed = errors.New("identity: source closed")
)
