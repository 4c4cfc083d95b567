package policy

import "errors"

// Reasons recorded on a decision that failed rather than denied. They are
// stable ids: clients, audit queries and dashboards match on them.
const (
	// ReasonError: the evaluation failed or the decision was malformed.
	ReasonError = "policy_error"
	// ReasonTimeout: the evaluation exceeded config Policy.Timeout.
	ReasonTimeout = "policy_timeout"
	// ReasonUndefined: the decision query produced no result.
	ReasonUndefined = "policy_undefined"
	// ReasonDenied is added to a deny that carries no reason of its own.
	ReasonDenied = "policy_denied"
)

// Sentinel errors, matched with errors.Is. Decide wraps them with the
// policy version and detail.
var (
	// ErrUndefined: the decision query was undefined for the input.
	ErrUndefined = errors.New("decision undefined")
	// ErrTimeout: the evaluation did not finish within the timeout.
	ErrTimeout = errors.New("evaluation timed out")
	// ErrMalformed: the decision did not have the documented shape.
	ErrMalformed = errors.New("malformed decision")
	// ErrInput: the input could not be converted (a non-JSON value).
	ErrInput = errors.New("invalid input")
)
