package protocol

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is the one error type that crosses the HTTP edge. It separates what
// the client sees (Status, Code, Message) from what is logged (Err).
// Code is a stable reason id ("policy_denied", "invalid_json", ...) that
// clients and the audit log can match on; Message never carries policy
// internals, bodies or secrets.
type Error struct {
	Status  int
	Code    string
	Message string
	// Err is the internal cause, logged and audited (redacted), never sent.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s (%d %s): %v", e.Message, e.Status, e.Code, e.Err)
	}
	return fmt.Sprintf("%s (%d %s)", e.Message, e.Status, e.Code)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error with a formatted client message.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Stable reason codes used across protocols. Protocol packages may add their
// own; keep them snake_case and never rename one (clients match on them).
const (
	CodeUnauthenticated   = "unauthenticated"
	CodeRevoked           = "identity_revoked"
	CodeRevocationUnknown = "revocation_unavailable"
	CodePolicyDenied      = "policy_denied"
	CodePolicyError       = "policy_error"
	CodeAuditUnavailable  = "audit_unavailable"
	CodeRateLimited       = "rate_limited"
	CodeBudgetExhausted   = "budget_exhausted"
	CodeInvalidJSON       = "invalid_json"
	CodeInvalidRequest    = "invalid_request"
	CodeBodyTooLarge      = "body_too_large"
	CodeUnsupportedMedia  = "unsupported_media_type"
	CodeUnknownRoute      = "unknown_route"
	CodeUpgradeRefused    = "upgrade_refused"
	CodeUpstreamError     = "upstream_error"
	CodeUpstreamTimeout   = "upstream_timeout"
	CodeLimiterError      = "limiter_unavailable"
	CodeGuardBlocked      = "guard_blocked"
	CodeMethodNotAllowed  = "method_not_allowed"
	CodeInternal          = "internal_error"
	CodeForbiddenOrigin   = "forbidden_origin"
	CodeSessionForbidden  = "session_forbidden"
	CodeNotFound          = "not_found"
	CodeClientClosed      = "client_closed_request"
	CodeUnsupportedSchema = "unsupported"
)

// StatusClientClosedRequest is nginx's non-standard status for a client that
// went away before the response (used in audit and metrics, never sent).
const StatusClientClosedRequest = 499

// AsError maps any error to an *Error: an *Error in the chain is returned as
// is; anything else becomes a 500 whose message reveals nothing.
func AsError(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error", Err: err}
}
