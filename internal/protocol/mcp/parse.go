package mcp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
)

// Header names (matched case-insensitively by net/http).
const (
	hdrSession     = "Mcp-Session-Id"
	hdrVersion     = "Mcp-Protocol-Version"
	hdrMethod      = "Mcp-Method"
	hdrName        = "Mcp-Name"
	hdrParamPrefix = "Mcp-Param-"
	hdrLastEventID = "Last-Event-Id"
)

const metaVersion = "io.modelcontextprotocol/protocolVersion"

// Parse implements protocol.Protocol. It refuses, before policy sees
// anything: a forbidden Origin (403), a non-JSON body (415), the legacy
// HTTP+SSE transport, malformed or ambiguous JSON-RPC, batches outside
// 2025-03-26, header/body mismatches, and sessions that are unknown,
// expired or owned by another identity.
func (p *Protocol) Parse(ctx context.Context, req *protocol.Request) (protocol.Exchange, error) {
	x, err := p.parse(ctx, req)
	if x != nil {
		remember(req.HTTP, x)
	}
	if err != nil {
		return nil, err
	}
	return x, nil
}

func (p *Protocol) parse(ctx context.Context, req *protocol.Request) (*exchange, error) {
	r := req.HTTP
	b := p.backends[req.Backend]
	if b == nil {
		return nil, &protocol.Error{Status: http.StatusInternalServerError, Code: protocol.CodeInternal, Message: "internal error",
			Err: fmt.Errorf("mcp: backend %q is not configured as mcp", req.Backend)}
	}
	x := &exchange{p: p, b: b, httpMethod: r.Method, now: p.now(), guard: req.Guard}
	x.peer, _ = ctxPeer(ctx)

	if o := r.Header.Get("Origin"); o != "" && !contains(b.opt.AllowedOrigins, o) {
		return x, protocol.Errorf(http.StatusForbidden, protocol.CodeForbiddenOrigin, "origin is not allowed")
	}
	if hasLegacyQuery(r) {
		return x, protocol.Errorf(http.StatusBadRequest, CodeLegacyTransport,
			"the HTTP+SSE transport (2024-11-05) is not supported; use Streamable HTTP")
	}
	hv := r.Header.Get(hdrVersion)
	if hv != "" && !knownRevisions[hv] {
		return x, protocol.Errorf(http.StatusBadRequest, CodeUnsupportedVersion, "unsupported MCP-Protocol-Version")
	}
	x.sessionID = r.Header.Get(hdrSession)
	if hv == Rev20260728 {
		// Stateless: sessions and resumption do not exist; do not let a
		// stale header reach a server that might still honour it.
		x.sessionID = ""
		r.Header.Del(hdrSession)
		r.Header.Del(hdrLastEventID)
	}
	var sessErr error
	if x.sessionID != "" {
		sessErr = x.bindSession()
	}

	switch r.Method {
	case http.MethodPost:
		err := x.parsePost(r, req.Body, hv)
		if sessErr != nil {
			// Refused either way; the parse only lent the ids for the answer.
			return x, sessErr
		}
		return x, err
	}
	if sessErr != nil {
		return x, sessErr
	}
	switch r.Method {
	case http.MethodGet:
		if hv == Rev20260728 {
			return x, protocol.Errorf(http.StatusMethodNotAllowed, protocol.CodeMethodNotAllowed, "GET is not part of MCP 2026-07-28")
		}
		if !acceptsSSE(r.Header.Get("Accept")) {
			return x, protocol.Errorf(http.StatusNotAcceptable, protocol.CodeInvalidRequest, "GET needs Accept: text/event-stream")
		}
		if len(req.Body) > 0 {
			return x, invalid("GET must not carry a body")
		}
		x.version = x.sessionVersion(hv)
		op := "stream/listen"
		if r.Header.Get(hdrLastEventID) != "" {
			op = "stream/resume"
			x.resume = true
		}
		x.calls = []protocol.Call{{Action: protocol.ActionRead, Operation: op, Resource: x.baseResource(op)}}
		return x, nil
	case http.MethodDelete:
		if hv == Rev20260728 {
			return x, protocol.Errorf(http.StatusMethodNotAllowed, protocol.CodeMethodNotAllowed, "DELETE is not part of MCP 2026-07-28")
		}
		if x.sessionID == "" {
			return x, protocol.Errorf(http.StatusBadRequest, CodeSessionRequired, "DELETE needs Mcp-Session-Id")
		}
		x.version = x.sessionVersion(hv)
		x.calls = []protocol.Call{{Action: protocol.ActionRead, Operation: "session/delete", Resource: x.baseResource("session/delete")}}
		return x, nil
	}
	return x, protocol.Errorf(http.StatusMethodNotAllowed, protocol.CodeMethodNotAllowed, "method %s is not allowed on an MCP endpoint", r.Method)
}

func (x *exchange) parsePost(r *http.Request, body []byte, hv string) error {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "application/json" {
		return protocol.Errorf(http.StatusUnsupportedMediaType, protocol.CodeUnsupportedMedia, "Content-Type must be application/json")
	}
	max := x.b.opt.MaxMessageBytes
	if len(body) > max {
		return protocol.Errorf(http.StatusRequestEntityTooLarge, protocol.CodeBodyTooLarge, "message exceeds %d bytes", max)
	}
	tree, err := jsonstrict.Parse(body, jsonstrict.Options{MaxBytes: int64(max)})
	if err != nil {
		var je *jsonstrict.Error
		msg := "invalid JSON"
		if errors.As(err, &je) {
			msg = je.Error()
		}
		return &protocol.Error{Status: http.StatusBadRequest, Code: protocol.CodeInvalidJSON, Message: msg, Err: err}
	}
	var raw []any
	if arr, ok := tree.([]any); ok {
		x.batch = true
		raw = arr
		if len(arr) == 0 {
			return invalid("an empty batch is not a JSON-RPC message")
		}
	} else {
		raw = []any{tree}
	}
	x.msgs = make([]*message, 0, len(raw))
	seen := map[string]bool{}
	for _, v := range raw {
		m, perr := parseMessage(v)
		if perr != nil {
			return perr
		}
		if m.kind == kindRequest {
			if seen[m.idKey] {
				return invalid("duplicate request id in batch")
			}
			seen[m.idKey] = true
		}
		x.msgs = append(x.msgs, m)
	}

	// The revision: 2026-07-28 is announced in the header and in every
	// request's _meta; an initialize names the one it asks for; otherwise
	// the session's, or 2025-03-26 when nothing says (transport spec).
	first := x.msgs[0]
	metaV := ""
	if first.params != nil {
		if meta, ok := first.params["_meta"].(map[string]any); ok {
			metaV, _ = meta[metaVersion].(string)
		}
	}
	switch {
	case hv == Rev20260728 || metaV == Rev20260728:
		if hv != metaV && first.kind == kindRequest {
			return protocol.Errorf(http.StatusBadRequest, CodeHeaderMismatch, "MCP-Protocol-Version does not match params._meta")
		}
		x.version = Rev20260728
	case first.kind == kindRequest && first.method == "initialize":
		v, _ := first.params["protocolVersion"].(string)
		if v == "" {
			return &protocol.Error{Status: 400, Code: protocol.CodeInvalidRequest, Message: "initialize needs params.protocolVersion", Err: errMsg}
		}
		x.version = v
		x.initialize = true
		if x.sessionID != "" {
			return invalid("initialize must not carry Mcp-Session-Id")
		}
	default:
		x.version = x.sessionVersion(hv)
		if x.sess != nil && hv != "" && hv != x.sess.version {
			return protocol.Errorf(http.StatusBadRequest, CodeUnsupportedVersion, "MCP-Protocol-Version does not match the session's")
		}
	}
	if x.batch {
		if x.version != Rev20250326 {
			return protocol.Errorf(http.StatusBadRequest, CodeBatchNotAllowed, "JSON-RPC batches are only allowed in MCP 2025-03-26")
		}
		if err := checkBatch(x.msgs); err != nil {
			return err
		}
	}
	if x.version == Rev20260728 {
		if err := x.checkHeaders2026(r); err != nil {
			return err
		}
	}
	x.calls = make([]protocol.Call, len(x.msgs))
	for i, m := range x.msgs {
		c, err := x.callFor(m)
		if err != nil {
			return err
		}
		x.calls[i] = c
	}
	return nil
}

// checkBatch applies 2025-03-26's rules: requests and notifications, or
// responses, never mixed; initialize never batched.
func checkBatch(ms []*message) error {
	responses := 0
	for _, m := range ms {
		if m.kind == kindResponse {
			responses++
		}
		if m.method == "initialize" {
			return protocol.Errorf(http.StatusBadRequest, CodeBatchNotAllowed, "initialize must not be batched")
		}
	}
	if responses != 0 && responses != len(ms) {
		return protocol.Errorf(http.StatusBadRequest, CodeBatchNotAllowed, "a batch holds either requests and notifications or responses")
	}
	return nil
}

// checkHeaders2026 compares the mirrored routing headers with the body
// (2026-07-28 "Request metadata headers"). They are never used for a
// decision; a mismatch is refused so no hop can act on a different value.
func (x *exchange) checkHeaders2026(r *http.Request) error {
	m := x.msgs[0]
	mismatch := func(what string) error {
		return protocol.Errorf(http.StatusBadRequest, CodeHeaderMismatch, "%s header does not match the body", what)
	}
	if m.kind == kindResponse {
		return invalid("MCP 2026-07-28 clients do not send responses")
	}
	hm, ok := headerValue(r.Header, hdrMethod)
	if !ok {
		return mismatch(hdrMethod)
	}
	if m.kind == kindRequest && hm == "" {
		return mismatch(hdrMethod)
	}
	if hm != "" && hm != m.method {
		return mismatch(hdrMethod)
	}
	if mv, ok := x.metaVersionOf(m); m.kind == kindRequest && (!ok || mv != Rev20260728) {
		return protocol.Errorf(http.StatusBadRequest, CodeHeaderMismatch, "params._meta protocol version missing or different from MCP-Protocol-Version")
	}
	name, hasName := "", false
	switch m.method {
	case "tools/call", "prompts/get":
		name, hasName = m.params["name"].(string)
	case "resources/read":
		name, hasName = m.params["uri"].(string)
	}
	hn, ok := headerValue(r.Header, hdrName)
	if !ok {
		return mismatch(hdrName)
	}
	if hasName && hn != name || !hasName && hn != "" {
		return mismatch(hdrName)
	}
	// Mcp-Param-* mirror tool arguments per the tool's x-mcp-header
	// annotations, learned from the tools/list results that passed here.
	var params []string
	for k := range r.Header {
		if len(k) > len(hdrParamPrefix) && strings.EqualFold(k[:len(hdrParamPrefix)], hdrParamPrefix) {
			params = append(params, k)
		}
	}
	if m.method != "tools/call" {
		if len(params) > 0 {
			return mismatch(hdrParamPrefix + "*")
		}
		return nil
	}
	binds, known := x.b.obs.headerBindings(name)
	if !known {
		if len(params) > 0 {
			return protocol.Errorf(http.StatusBadRequest, CodeHeaderMismatch, "Mcp-Param headers for a tool whose definition was not listed through Warden")
		}
		return nil
	}
	args, _ := m.params["arguments"].(map[string]any)
	want := map[string]string{}
	for _, bnd := range binds {
		if v, ok := lookupPath(args, bnd.path); ok {
			if s, ok := primitiveString(v); ok {
				want[http.CanonicalHeaderKey(hdrParamPrefix+bnd.header)] = s
			}
		}
	}
	for _, k := range params {
		hv, ok := headerValue(r.Header, k)
		w, expected := want[http.CanonicalHeaderKey(k)]
		if !ok || !expected || hv != w {
			return mismatch(hdrParamPrefix + "*")
		}
	}
	if len(want) != len(params) {
		return mismatch(hdrParamPrefix + "*")
	}
	return nil
}

// headerValue returns a single header value, decoding the =?base64?…?= form
// non-ASCII values use. ok is false for repeated or undecodable values.
func headerValue(h http.Header, k string) (string, bool) {
	vs := h.Values(k)
	switch len(vs) {
	case 0:
		return "", true
	case 1:
	default:
		return "", false
	}
	v := strings.TrimSpace(vs[0])
	if strings.HasPrefix(v, "=?base64?") && strings.HasSuffix(v, "?=") && len(v) >= len("=?base64??=") {
		d, err := base64.StdEncoding.DecodeString(v[len("=?base64?") : len(v)-2])
		if err != nil {
			return "", false
		}
		return string(d), true
	}
	return v, true
}

func lookupPath(args map[string]any, path []string) (any, bool) {
	var cur any = args
	for _, p := range path {
		o, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		cur, ok = o[p]
		if !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

// primitiveString formats an argument as its mirrored header value:
// strings as is, booleans as true/false, integers in decimal.
func primitiveString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	case jsonstrict.Number:
		if n, ok := jsonstrict.Int(x); ok {
			return fmt.Sprint(n), true
		}
		if f, ok := jsonstrict.Float(x); ok && f == float64(int64(f)) {
			return fmt.Sprint(int64(f)), true
		}
	}
	return "", false
}

func (x *exchange) metaVersionOf(m *message) (string, bool) {
	meta, ok := m.params["_meta"].(map[string]any)
	if !ok {
		return "", false
	}
	v, ok := meta[metaVersion].(string)
	return v, ok
}

// callFor turns one client→server message into the Call policy decides.
func (x *exchange) callFor(m *message) (protocol.Call, error) {
	if m.kind == kindResponse {
		// A response to a server→client request: only to an id the server
		// actually sent on this session (checked in Forward).
		res := x.baseResource("response")
		if x.sess != nil {
			if meth, ok := x.p.sessions.serverRequest(x.sess, m.idKey); ok {
				res["method"] = meth
			}
		}
		res["error"] = m.errObj != nil
		return protocol.Call{Action: protocol.ActionRead, Operation: "response", Resource: res}, nil
	}
	info, known := clientMethods[m.method]
	if !known {
		if a, ok := x.b.opt.ExtraMethods[m.method]; ok {
			info, known = methodInfo{action: a, notification: strings.HasPrefix(m.method, "notifications/")}, true
		}
	}
	res := x.baseResource(m.method)
	if !known {
		res["known"] = false
		return protocol.Call{Action: protocol.ActionAdmin, Operation: m.method, Resource: res}, nil
	}
	if info.notification != (m.kind == kindNotification) {
		return protocol.Call{}, invalid("method " + kindWord(info.notification) + " sent as the wrong message kind")
	}
	badParams := func(what string) error {
		return &protocol.Error{Status: http.StatusBadRequest, Code: protocol.CodeInvalidRequest, Message: m.method + ": " + what, Err: errMsg}
	}
	p := m.params
	switch m.method {
	case "tools/call":
		name, ok := p["name"].(string)
		if !ok || name == "" {
			return protocol.Call{}, badParams("params.name must be a non-empty string")
		}
		res["tool"] = name
		args := map[string]any{}
		if a, present := p["arguments"]; present && a != nil {
			if args, ok = a.(map[string]any); !ok {
				return protocol.Call{}, badParams("params.arguments must be an object")
			}
		}
		res["arguments"] = policyValue(args)
		if _, ok := p["task"]; ok {
			res["task_augmented"] = true
		}
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		uri, ok := p["uri"].(string)
		if !ok || uri == "" {
			return protocol.Call{}, badParams("params.uri must be a non-empty string")
		}
		res["uri"] = uri
	case "prompts/get":
		name, ok := p["name"].(string)
		if !ok || name == "" {
			return protocol.Call{}, badParams("params.name must be a non-empty string")
		}
		res["prompt"] = name
		if a, present := p["arguments"]; present && a != nil {
			args, ok := a.(map[string]any)
			if !ok {
				return protocol.Call{}, badParams("params.arguments must be an object")
			}
			res["arguments"] = policyValue(args)
		}
	case "completion/complete":
		ref, _ := p["ref"].(map[string]any)
		switch t, _ := ref["type"].(string); t {
		case "ref/prompt":
			name, ok := ref["name"].(string)
			if !ok {
				return protocol.Call{}, badParams("params.ref.name must be a string")
			}
			res["prompt"] = name
		case "ref/resource":
			uri, ok := ref["uri"].(string)
			if !ok {
				return protocol.Call{}, badParams("params.ref.uri must be a string")
			}
			res["uri"] = uri
		default:
			return protocol.Call{}, badParams("params.ref.type must be ref/prompt or ref/resource")
		}
	case "tasks/get", "tasks/result", "tasks/cancel":
		id, ok := p["taskId"].(string)
		if !ok {
			return protocol.Call{}, badParams("params.taskId must be a string")
		}
		res["task"] = id
	case "logging/setLevel":
		lvl, _ := p["level"].(string)
		res["level"] = lvl
	}
	return protocol.Call{Action: info.action, Operation: m.method, Resource: res}, nil
}

func kindWord(notification bool) string {
	if notification {
		return "(a notification)"
	}
	return "(a request)"
}

// policyValue deep-copies a parsed value for policy input, turning
// jsonstrict.Number into json.Number, the number type the policy engine
// accepts (the text is kept exactly; no float rounding).
func policyValue(v any) any {
	switch x := v.(type) {
	case jsonstrict.Number:
		return json.Number(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = policyValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = policyValue(e)
		}
		return out
	}
	return v
}

// baseResource is what every Call's resource carries.
func (x *exchange) baseResource(method string) map[string]any {
	res := make(map[string]any, 8)
	res["method"], res["direction"] = method, "client_to_server"
	if x.version != "" {
		res["protocol_version"] = x.version
	}
	if x.sessionID != "" {
		res["session"] = hashID(x.sessionID)
	}
	return res
}

func (x *exchange) sessionVersion(hv string) string {
	if x.sess != nil {
		return x.sess.version
	}
	if hv != "" {
		return hv
	}
	return Rev20250326
}

// bindSession looks the presented session up and checks it belongs to the
// caller: the session was bound to the verified identity that created it.
func (x *exchange) bindSession() error {
	if !validSessionID(x.sessionID) {
		return invalid("Mcp-Session-Id must be visible ASCII")
	}
	s, err := x.p.sessions.lookup(x.b.name, x.sessionID, x.peer, x.b.opt.SessionTTL)
	if err != nil {
		x.sessionRefused = err.reason
		return err.perr
	}
	x.sess = s
	return nil
}

func validSessionID(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// hasLegacyQuery recognizes the HTTP+SSE transport's message endpoint
// (POST /messages?sessionId=…), which Streamable HTTP never uses.
func hasLegacyQuery(r *http.Request) bool {
	for k := range r.URL.Query() {
		if strings.EqualFold(k, "sessionid") || strings.EqualFold(k, "session_id") {
			return true
		}
	}
	return false
}

func acceptsSSE(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err == nil && (mt == "text/event-stream" || mt == "*/*" || mt == "text/*") {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
