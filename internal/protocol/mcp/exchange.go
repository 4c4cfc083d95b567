package mcp

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
)

// exchange is one HTTP request to an MCP endpoint and its response. It
// never holds the *http.Request (see remember).
type exchange struct {
	p          *Protocol
	b          *backend
	httpMethod string
	now        time.Time
	peer       string

	sessionID      string
	sess           *session
	sessionRefused string
	version        string
	initialize     bool
	resume         bool
	batch          bool

	msgs  []*message
	calls []protocol.Call
	// guard inspects what the server says to the model on the way back
	// (results, errors, listings, instructions, server requests; see
	// guard.go); nil when guardrails are off.
	guard protocol.Guard

	// Filled by Forward.
	forwarded int
	pending   map[string]pendingReq // request idKey → method and call, forwarded upstream
	local     []any                 // error responses answered by Warden
	refusal   *protocol.Error       // what Forward refused the whole request with
	pinStatus string

	// Filled while the response streams.
	aud respAudit
}

type respAudit struct {
	listed, hidden, pinHidden int
	serverDropped             int
	serverAllowed             int
	unknownResponses          int
	pinChanges                []string
	newSession                bool
	tasksCreated              int
	badNames                  int
	streamError               string
	guard                     guardAudit
}

var _ protocol.Exchange = (*exchange)(nil)

// Calls implements protocol.Exchange: one Call per JSON-RPC message, in
// order; one for a GET stream or a DELETE.
func (x *exchange) Calls() []protocol.Call { return x.calls }

// Forward implements protocol.Exchange. Allowed messages are re-encoded
// canonically and sent; denied requests are answered here with a JSON-RPC
// error carrying their id (merged into the response later), denied
// notifications and responses are dropped. Nothing reaches upstream when
// nothing is allowed.
func (x *exchange) Forward(ctx context.Context, ds []protocol.Decision) ([]byte, error) {
	if len(ds) != len(x.calls) {
		return nil, &protocol.Error{Status: http.StatusInternalServerError, Code: protocol.CodeInternal, Message: "internal error",
			Err: errors.New("mcp: decisions do not match calls")}
	}
	if len(x.msgs) == 0 { // GET or DELETE
		if reason := obligationProblem(ds[0]); !ds[0].Allow || reason != "" {
			x.refusal = protocol.Errorf(http.StatusForbidden, protocol.CodePolicyDenied, "request denied")
			return nil, x.refusal
		}
		x.forwarded = 1
		return nil, nil
	}
	out := make([]any, 0, len(x.msgs))
	status, firstReason := http.StatusForbidden, ""
	for i, m := range x.msgs {
		reason, msg := x.refuse(m, x.calls[i], ds[i])
		if reason != "" {
			if firstReason == "" {
				firstReason = reason
				if reason == CodeUnknownMethod && x.version == Rev20260728 {
					status = http.StatusNotFound // 2026-07-28: unknown method → 404 + -32601
				} else if reason == CodeUnknownResponse {
					status = http.StatusBadRequest
				}
			}
			if m.kind == kindRequest {
				x.local = append(x.local, errorObject(m.id, reason, msg))
			}
			continue
		}
		out = append(out, m.encode())
		switch m.kind {
		case kindRequest:
			if x.pending == nil {
				x.pending = map[string]pendingReq{}
			}
			pr := pendingReq{method: m.method, call: x.calls[i]}
			x.pending[m.idKey] = pr
			if x.sess != nil {
				x.p.sessions.addPending(x.sess, m.idKey, pr)
			}
		case kindResponse:
			if x.sess != nil {
				x.p.sessions.takeServerRequest(x.sess, m.idKey)
			}
		}
	}
	x.forwarded = len(out)
	if len(out) == 0 {
		x.refusal = protocol.Errorf(status, firstReason, "request refused")
		return nil, x.refusal
	}
	var v any = out
	if !x.batch {
		v = out[0]
	}
	b, err := jsonstrict.Marshal(v)
	if err != nil {
		return nil, &protocol.Error{Status: http.StatusInternalServerError, Code: protocol.CodeInternal, Message: "internal error", Err: err}
	}
	return b, nil
}

// refuse says why one message is not forwarded ("" when it is).
func (x *exchange) refuse(m *message, c protocol.Call, d protocol.Decision) (reason, msg string) {
	if !d.Allow {
		return protocol.CodePolicyDenied, "denied by policy"
	}
	if r := obligationProblem(d); r != "" {
		return r, "denied: unsupported policy obligation"
	}
	if known, ok := c.Resource["known"].(bool); ok && !known {
		return CodeUnknownMethod, "method not found"
	}
	if m.kind == kindResponse {
		if x.sess == nil {
			return CodeUnknownResponse, "response to a request the server did not send"
		}
		if _, ok := x.p.sessions.serverRequest(x.sess, m.idKey); !ok {
			return CodeUnknownResponse, "response to a request the server did not send"
		}
	}
	switch m.method {
	case "tasks/get", "tasks/result", "tasks/cancel":
		id, _ := c.Resource["task"].(string)
		if !x.p.tasks.owns(x.b.name, id, x.peer) {
			return CodeTaskForbidden, "task not found for this identity"
		}
	}
	if m.method == "tools/call" {
		if name, _ := c.Resource["tool"].(string); !validToolName(name) {
			return CodeInvalidToolName, "tool name outside [A-Za-z0-9_.-]{1,128}"
		}
	}
	if m.method == "tools/call" && x.b.pins != nil {
		name, _ := c.Resource["tool"].(string)
		st := x.b.obs.status(name)
		x.pinStatus = st
		if st != pinMatch {
			x.p.pinCount.WithLabelValues(x.b.name, "call_"+st).Inc()
			if x.b.opt.PinMode == PinEnforce {
				return CodeToolNotApproved, "tool definition is not approved (changed, new, or not yet listed through Warden)"
			}
		}
	}
	return "", ""
}

// obligationProblem fails closed on obligations this protocol cannot apply.
// "limits" are enforced by the gateway itself.
func obligationProblem(d protocol.Decision) string {
	for k := range d.Obligations {
		if k != "limits" {
			return CodeObligation
		}
	}
	return ""
}

// WriteError answers a refused request in JSON-RPC: the errors Forward
// prepared when it refused everything, otherwise e for every request id.
func (x *exchange) WriteError(w http.ResponseWriter, _ *http.Request, e *protocol.Error) {
	if e == x.refusal && len(x.local) > 0 {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		var v any = x.local
		if !x.batch {
			v = x.local[0]
		}
		b, _ := jsonstrict.Marshal(v)
		w.WriteHeader(e.Status)
		_, _ = w.Write(b)
		return
	}
	var ids []any
	for _, m := range x.msgs {
		if m.kind == kindRequest {
			ids = append(ids, m.id)
		}
	}
	if len(ids) == 0 {
		writeRPCError(w, e, []any{nil}, false)
		return
	}
	writeRPCError(w, e, ids, x.batch)
}

// Audit implements protocol.Exchange: what was asked and what was filtered,
// never argument values (size and SHA-256 only) nor raw session ids.
func (x *exchange) Audit() map[string]any {
	a := map[string]any{"http_method": x.httpMethod}
	if x.version != "" {
		a["protocol_version"] = x.version
	}
	if x.sessionID != "" {
		a["session"] = hashID(x.sessionID)
	}
	if x.sessionRefused != "" {
		a["session_refused"] = x.sessionRefused
	}
	if x.batch {
		a["batch"] = len(x.msgs)
	}
	var methods []string
	for i, m := range x.msgs {
		if m.kind == kindResponse {
			methods = append(methods, "response")
		} else {
			methods = append(methods, m.method)
		}
		if i > 0 {
			continue
		}
		res := x.calls
		if len(res) == 0 {
			break
		}
		r := res[0].Resource
		for _, k := range []string{"tool", "uri", "prompt", "task"} {
			if v, ok := r[k].(string); ok {
				a[k] = v
			}
		}
		if _, ok := r["arguments"]; ok {
			// Size and hash of the canonical arguments as forwarded.
			args, _ := m.params["arguments"].(map[string]any)
			if args == nil {
				args = map[string]any{}
			}
			n, sum := digest(args)
			a["arguments_bytes"], a["arguments_sha256"] = n, sum
		}
	}
	if len(methods) == 1 {
		a["method"] = methods[0]
	} else if len(methods) > 1 {
		a["methods"] = methods
	}
	if x.pinStatus != "" {
		a["pin_status"] = x.pinStatus
	}
	if len(x.local) > 0 {
		a["refused_messages"] = len(x.local)
	}
	if x.msgs != nil {
		a["forwarded_messages"] = x.forwarded
	}
	au := x.aud
	if au.listed > 0 || au.hidden > 0 || au.pinHidden > 0 {
		a["listed"], a["hidden"], a["pin_hidden"] = au.listed, au.hidden, au.pinHidden
	}
	if len(au.pinChanges) > 0 {
		a["pin_changes"] = au.pinChanges
	}
	if au.serverAllowed > 0 || au.serverDropped > 0 {
		a["server_messages"], a["server_dropped"] = au.serverAllowed, au.serverDropped
	}
	if au.unknownResponses > 0 {
		a["unknown_responses_dropped"] = au.unknownResponses
	}
	if au.badNames > 0 {
		a["invalid_tool_names"] = au.badNames
	}
	if au.tasksCreated > 0 {
		a["tasks_created"] = au.tasksCreated
	}
	if au.newSession {
		a["session_created"] = true
	}
	if au.streamError != "" {
		a["stream_error"] = au.streamError
	}
	if x.guard != nil && au.guard.scanned {
		// Without a Guard nothing was scanned, and nothing may claim it.
		a["response_guard"] = au.guard.fields()
	}
	return a
}
