package protocol

import "context"

// peerKey is the private context key for the verified caller identity.
type peerKey struct{}

// WithPeer returns a copy of ctx carrying the caller's verified SPIFFE ID.
// Only the gateway calls it, after mTLS (or JWT-SVID) verification, so that
// protocols which bind state to an identity (MCP sessions) never have to
// trust a header for it.
func WithPeer(ctx context.Context, spiffeID string) context.Context {
	return context.WithValue(ctx, peerKey{}, spiffeID)
}

// PeerFrom returns the verified SPIFFE ID that WithPeer stored in ctx, and
// false when there is none (protocols must then fail closed).
func PeerFrom(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(peerKey{}).(string)
	return id, ok && id != ""
}
