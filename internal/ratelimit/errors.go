package ratelimit

import "errors"

// Sentinel errors, matched with errors.Is.
var (
	// ErrRateLimited: the request rate cap denied the request.
	ErrRateLimited = errors.New("ratelimit: rate limit exceeded")
	// ErrBudgetExhausted: a token budget is spent. Meter.Charge returns it
	// (inside a *protocol.Error) so the exchange ends the stream.
	ErrBudgetExhausted = errors.New("ratelimit: token budget exhausted")
	// ErrStoreDown: the shared store failed recently and is being skipped.
	ErrStoreDown = errors.New("ratelimit: store unavailable")
	// ErrNoIdentity: a limited request without a SPIFFE ID; counting it
	// under "" would merge strangers into one budget.
	ErrNoIdentity = errors.New("ratelimit: request without a SPIFFE ID")
	// ErrSettled: the Reservation was already settled or released.
	ErrSettled = errors.New("ratelimit: reservation already settled")
)
