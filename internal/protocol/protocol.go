// Package protocol defines the normalized description of what a caller is
// trying to do (a Call), and the small interface every wire protocol
// (generic HTTP, OpenAI, Anthropic, MCP, Qdrant) implements so the gateway can
// authorize it: strict parse → calls → policy decisions → the exact bytes to
// forward → response filtering.
//
// The gateway owns identity, policy, audit, limits and the proxy; a protocol
// owns only its wire format. That split is what lets each protocol be written
// and tested on its own while every request still passes the same checks.
package protocol

import (
	"context"
	"net/http"
)

// Actions, coarse-grained. Protocols may put finer verbs in Call.Operation.
const (
	ActionRead   = "read"
	ActionWrite  = "write"
	ActionInvoke = "invoke"
	ActionAdmin  = "admin"
	// ActionConnectExternal lets a model reach tools outside Warden (OpenAI
	// Responses "mcp" tools, Anthropic mcp_servers). Roles' "*" does not
	// cover it: it must be granted by name.
	ActionConnectExternal = "connect_external"
	// ActionServerRequest is a server→client request on an MCP stream
	// (sampling, elicitation, roots). Roles' "*" does not cover it either.
	ActionServerRequest = "server_request"
)

// Call is one thing a caller attempts. Policy decides each Call on its own;
// a request carries one Call, or several (an MCP batch).
type Call struct {
	// Action is read, write, invoke or admin.
	Action string
	// Operation is the protocol's own verb: "GET", "chat.completions",
	// "tools/call", "points.search".
	Operation string
	// Resource holds the protocol-specific fields the policy sees under
	// input.resource (model, tool name and arguments, collection, ...). The
	// gateway adds "kind" and "backend". Values must be JSON-compatible:
	// nil, bool, string, float64/int/int64, jsonstrict numbers, []any, map[string]any.
	Resource map[string]any
	// Guards, on a response-path call (see Authorizer), is the guard verdict
	// on the text that call would let through (an Inspection's Verdict: a
	// tool result, a tool definition, a retrieved point). The gateway puts it
	// in input.guards. Nil on request calls: the gateway sets input.guards
	// from its own scan of the request.
	Guards map[string]any
}

// Decision is the policy outcome for one Call, as protocols see it.
type Decision struct {
	Allow   bool
	Reasons []string
	// Obligations are conditions attached to an allow: tenant filters,
	// redaction, limits. A protocol that does not understand an obligation
	// addressed to it must refuse to forward (fail closed).
	Obligations map[string]any
}

// Authorizer decides calls that arise after a request was admitted: items of
// a list response, server→client messages on a stream. The gateway provides
// it on top of the policy engine; it never returns fewer decisions than calls
// without also returning an error.
type Authorizer func(ctx context.Context, calls []Call) ([]Decision, error)

// Request is what a protocol parses. Body is the size-capped, decoded request
// body (nil when there is none); the protocol must not read HTTP.Body.
type Request struct {
	HTTP *http.Request
	Body []byte
	// Backend is the name of the configured backend the route selected.
	Backend string
	// Guard scans and redacts text for the exchange's obligations and
	// response-side checks. Nil when guardrails are off.
	Guard Guard
}

// Protocol parses the requests of one wire protocol. Implementations are
// safe for concurrent use.
type Protocol interface {
	// Name is the backend kind: "http", "openai", "anthropic", "mcp", "qdrant".
	Name() string
	// Parse strictly parses req. Anything ambiguous is an *Error.
	Parse(ctx context.Context, req *Request) (Exchange, error)
	// WriteError writes e in the protocol's own error format (OpenAI error
	// object, JSON-RPC error, Qdrant status object, ...).
	WriteError(w http.ResponseWriter, r *http.Request, e *Error)
}

// Exchange is one request and its response as a protocol understands it.
// The gateway calls Calls, then Forward, then Response, then Audit, from one
// goroutine.
type Exchange interface {
	// Calls lists what the request attempts.
	Calls() []Call
	// Forward is called once all calls are decided and at least the request as
	// a whole is allowed. It applies the obligations and returns the exact
	// body to send upstream: the canonical re-encoding of what was decided
	// (nil for no body). An *Error refuses the request.
	Forward(ctx context.Context, decisions []Decision) ([]byte, error)
	// Response may replace resp.Body (and headers) with a filtering,
	// metering or inspecting reader. It must not buffer streams whole.
	Response(ctx context.Context, resp *http.Response, env *ResponseEnv) error
	// Audit returns the protocol fields for the audit record (model, tool,
	// tokens, ...). Never bodies, arguments or secrets. It is called after
	// the response body is finished or abandoned.
	Audit() map[string]any
}

// ResponseEnv is what the gateway lends an exchange for the response path.
// Fields may be nil when the feature is not configured.
type ResponseEnv struct {
	// Authorize decides response-path calls (list filtering, server→client
	// requests).
	Authorize Authorizer
	// Meter charges usage learned from the response (tokens) against the
	// caller's budgets. A non-nil error means the budget is exhausted: the
	// exchange must end the stream cleanly in its own format.
	Meter Meter
}

// Meter charges usage against budgets as it is learned.
type Meter interface {
	Charge(ctx context.Context, units int64) error
}
