package mcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
	"github.com/wardenhq/warden/internal/sse"
)

var errUpstream = errors.New("mcp: upstream protocol violation")

func upstreamErr(format string, args ...any) *protocol.Error {
	return &protocol.Error{Status: http.StatusBadGateway, Code: protocol.CodeUpstreamError, Message: "upstream MCP server error",
		Err: fmt.Errorf("%w: "+format, append([]any{errUpstream}, args...)...)}
}

// Response implements protocol.Exchange. It binds a session the server
// created to the caller, forgets ended sessions, and replaces the body with
// a filtered one: a re-encoded JSON document, or an SSE stream re-emitted
// event by event in canonical form (never buffered whole).
func (x *exchange) Response(ctx context.Context, resp *http.Response, env *protocol.ResponseEnv) error {
	if err := x.sessionFromResponse(resp); err != nil {
		return err
	}
	if enc := resp.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return upstreamErr("response is %s-encoded; MCP responses must be inspectable", enc)
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch {
	case resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusNoContent:
		if len(x.local) > 0 {
			// Everything forwarded was a notification or response, but
			// Warden refused requests of the same batch: answer those.
			_ = resp.Body.Close()
			x.replaceBody(resp, x.localBody(), "application/json")
			resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
		}
		return nil
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return nil // an error the server explains itself; nothing to filter
	case ct == "application/json":
		return x.filterJSON(ctx, resp, env)
	case ct == "text/event-stream":
		resp.Body = sse.NewFilter(resp.Body, &sseHook{x: x, ctx: ctx, env: env, pre: x.localEvents()},
			sse.FilterOptions{Reader: sse.ReaderOptions{MaxLine: x.b.opt.MaxMessageBytes, MaxEvent: x.b.opt.MaxMessageBytes}})
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
		if x.version == Rev20260728 {
			resp.Header.Set("X-Accel-Buffering", "no")
		}
		return nil
	}
	return upstreamErr("unexpected content type %q", ct)
}

// sessionFromResponse binds a newly assigned Mcp-Session-Id to the caller
// before the client can see it, and forgets sessions that ended.
func (x *exchange) sessionFromResponse(resp *http.Response) error {
	sid := resp.Header.Get(hdrSession)
	if x.version == Rev20260728 {
		resp.Header.Del(hdrSession)
		return nil
	}
	if sid != "" && sid != x.sessionID {
		if x.sessionID != "" {
			return upstreamErr("server replaced the session id mid-session")
		}
		if !validSessionID(sid) {
			return upstreamErr("invalid Mcp-Session-Id from server")
		}
		if x.peer == "" {
			return &protocol.Error{Status: http.StatusInternalServerError, Code: protocol.CodeInternal, Message: "internal error",
				Err: errors.New("mcp: no verified identity in context to bind the session to (protocol.WithPeer)")}
		}
		if !x.p.sessions.create(x.b.name, sid, x.peer, x.version, x.b.opt.SessionTTL) {
			return upstreamErr("server reused a session id bound to another identity")
		}
		ss, lerr := x.p.sessions.lookup(x.b.name, sid, x.peer, x.b.opt.SessionTTL)
		if lerr != nil {
			return lerr.perr
		}
		x.sessionID, x.sess = sid, ss
		x.aud.newSession = true
		for k, m := range x.pending {
			x.p.sessions.addPending(ss, k, m)
		}
	}
	if x.sessionID != "" {
		switch {
		case resp.StatusCode == http.StatusNotFound:
			x.p.sessions.End(x.b.name, x.sessionID)
		case x.httpMethod == http.MethodDelete && resp.StatusCode >= 200 && resp.StatusCode < 300:
			x.p.sessions.End(x.b.name, x.sessionID)
		}
	}
	return nil
}

func (x *exchange) localBody() []byte {
	var v any = x.local
	if !x.batch {
		v = x.local[0]
	}
	b, _ := jsonstrict.Marshal(v)
	return b
}

func (x *exchange) localEvents() []byte {
	var out []byte
	for _, e := range x.local {
		b, _ := jsonstrict.Marshal(e)
		out, _ = sse.AppendEvent(out, sse.Event{Data: string(b), HasData: true})
	}
	return out
}

func (x *exchange) replaceBody(resp *http.Response, b []byte, ct string) {
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	resp.Header.Set("Content-Type", ct)
}

// filterJSON handles an application/json response: bounded read, strict
// parse, filter, merge Warden's own answers, canonical re-encoding.
func (x *exchange) filterJSON(ctx context.Context, resp *http.Response, env *protocol.ResponseEnv) error {
	max := x.b.opt.MaxResponseBytes
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	_ = resp.Body.Close()
	if err != nil {
		return &protocol.Error{Status: http.StatusBadGateway, Code: protocol.CodeUpstreamError, Message: "upstream response could not be read", Err: err}
	}
	if int64(len(body)) > max {
		return upstreamErr("response exceeds %d bytes", max)
	}
	out, batch, err := x.processData(ctx, env, body)
	if err != nil {
		return err
	}
	out = append(out, x.local...)
	if len(out) == 0 {
		return upstreamErr("response answers no request the client sent")
	}
	var v any = out
	if !batch && !x.batch {
		if len(out) > 1 {
			v = out
		} else {
			v = out[0]
		}
	}
	b, err := jsonstrict.Marshal(v)
	if err != nil {
		return upstreamErr("re-encode: %v", err)
	}
	x.replaceBody(resp, b, "application/json")
	return nil
}

// processData parses one JSON document from the server (a response body
// or one SSE event's data) and returns the messages to pass on.
func (x *exchange) processData(ctx context.Context, env *protocol.ResponseEnv, data []byte) ([]any, bool, error) {
	tree, err := jsonstrict.Parse(data, jsonstrict.Options{MaxBytes: int64(x.b.opt.MaxMessageBytes) * 4})
	if err != nil {
		return nil, false, upstreamErr("invalid JSON from server: %v", err)
	}
	raw, batch := tree.([]any)
	if batch {
		if x.version != Rev20250326 {
			return nil, true, upstreamErr("server batched messages outside 2025-03-26")
		}
	} else {
		raw = []any{tree}
	}
	msgs := make([]*message, 0, len(raw))
	for _, v := range raw {
		m, perr := parseMessage(v)
		if perr != nil {
			return nil, batch, upstreamErr("invalid JSON-RPC from server: %s", perr.Message)
		}
		msgs = append(msgs, m)
	}
	out, err := x.processServer(ctx, env, msgs)
	return out, batch, err
}

// processServer decides every server→client message of one unit (a body
// or an event): responses must answer a request the client sent here (or,
// on a resumed stream, earlier in the session) and list results are
// filtered; server requests and notifications are authorized as calls and
// dropped when denied. One Authorize per unit, plus one per list page.
func (x *exchange) processServer(ctx context.Context, env *protocol.ResponseEnv, msgs []*message) ([]any, error) {
	out := make([]any, 0, len(msgs))
	type pendingCall struct {
		idx int // index in out, or -1
		m   *message
	}
	var calls []protocol.Call
	var pcs []pendingCall
	var mrtr []int // indexes in out of input_required results (2026-07-28)
	var mrtrCalls [][]int
	var flagged []flaggedResult // results the guard found something in
	for _, m := range msgs {
		switch m.kind {
		case kindResponse:
			pr, ok := x.takePending(m.idKey)
			if !ok {
				x.aud.unknownResponses++
				continue
			}
			method := pr.method
			if m.errObj != nil {
				if f, ok := x.inspectError(ctx, pr, m.errObj); ok {
					f.idx, f.id = len(out), m.id
					flagged = append(flagged, f)
				}
			}
			if m.result != nil {
				if f, ok := x.inspectResult(ctx, pr, m.result); ok {
					f.idx, f.id = len(out), m.id
					flagged = append(flagged, f)
				}
				if lf, ok := listFields[method]; ok {
					if err := x.filterList(ctx, env, method, lf.field, lf.itemMethod, m.result); err != nil {
						return nil, err
					}
				}
				if err := x.taskResult(method, m.result); err != nil {
					return nil, err
				}
				if method == "initialize" || method == "server/discover" {
					x.checkInstructions(m.result)
					flagged = append(flagged, x.inspectInitialize(ctx, pr, m.result)...)
				}
				if method == "initialize" {
					if v, _ := m.result["protocolVersion"].(string); v != "" {
						x.version = v
						if x.sessionID != "" {
							x.p.sessions.setVersion(x.b.name, x.sessionID, v)
						}
					}
				}
				if rt, _ := m.result["resultType"].(string); rt == "input_required" {
					reqs, _ := m.result["inputRequests"].(map[string]any)
					var idxs []int
					for _, rv := range reqs {
						r, _ := rv.(map[string]any)
						meth, _ := r["method"].(string)
						params, _ := r["params"].(map[string]any)
						c, ok := x.serverCall(&message{kind: kindRequest, method: meth, params: params})
						if !ok {
							c = protocol.Call{Action: protocol.ActionAdmin, Operation: meth, Resource: map[string]any{"method": meth, "known": false}}
						} else {
							c.Guards = x.inspectServerRequest(ctx, meth, params)
						}
						idxs = append(idxs, len(calls))
						calls = append(calls, c)
						pcs = append(pcs, pendingCall{idx: -1})
					}
					mrtr = append(mrtr, len(out))
					mrtrCalls = append(mrtrCalls, idxs)
				}
			}
			out = append(out, m.encode())
		default:
			if x.version == Rev20260728 && m.kind == kindRequest {
				// 2026-07-28 servers MUST NOT send requests on a stream.
				x.aud.serverDropped++
				continue
			}
			c, ok := x.serverCall(m)
			if !ok || !x.taskVisible(m) {
				x.aud.serverDropped++
				continue
			}
			if m.kind == kindRequest {
				c.Guards = x.inspectServerRequest(ctx, m.method, m.params)
			}
			calls = append(calls, c)
			pcs = append(pcs, pendingCall{idx: len(out), m: m})
			out = append(out, m.encode())
		}
	}
	if len(flagged) > 0 {
		x.decideResults(ctx, env, flagged, out)
	}
	if len(calls) == 0 {
		return out, nil
	}
	ds, err := authorize(ctx, env, calls)
	if err != nil {
		return nil, err
	}
	drop := map[int]bool{}
	for i, pc := range pcs {
		allowed := ds[i].Allow && obligationProblem(ds[i]) == ""
		if calls[i].Guards != nil {
			x.aud.guard.decided(allowed, guardDropped)
		}
		if pc.idx < 0 {
			continue
		}
		if !allowed {
			drop[pc.idx] = true
			x.aud.serverDropped++
			if calls[i].Guards != nil {
				x.p.log.LogAttrs(ctx, slog.LevelWarn, "mcp server request dropped",
					slogStr("backend", x.b.name), slogStr("method", pc.m.method), slog.Any("reasons", ds[i].Reasons))
			}
			continue
		}
		x.aud.serverAllowed++
		if pc.m.kind == kindRequest && x.sess != nil {
			x.p.sessions.addServerRequest(x.sess, pc.m.idKey, pc.m.method)
		}
	}
	for j, oi := range mrtr {
		for _, ci := range mrtrCalls[j] {
			if known, ok := calls[ci].Resource["known"].(bool); !ds[ci].Allow || obligationProblem(ds[ci]) != "" || ok && !known {
				obj := out[oi].(map[string]any)
				x.aud.serverDropped++
				if _, withheld := obj["error"]; withheld {
					break // the rest of the result was withheld already
				}
				reason, guardReasons := protocol.CodePolicyDenied, []string(nil)
				if calls[ci].Guards != nil && !ds[ci].Allow {
					reason, guardReasons = deniedReason(ds[ci].Reasons)
				}
				if len(guardReasons) > 0 {
					out[oi] = withheldObject(obj["id"], "input request", reason, guardReasons)
				} else {
					out[oi] = errorObject(obj["id"], protocol.CodePolicyDenied, "the server asked for input that policy denies")
				}
				break
			}
		}
	}
	if len(drop) == 0 {
		return out, nil
	}
	kept := out[:0]
	for i, v := range out {
		if !drop[i] {
			kept = append(kept, v)
		}
	}
	return kept, nil
}

// taskResult binds a task the server created for this caller, and keeps
// only the caller's own tasks in a tasks/list page.
func (x *exchange) taskResult(method string, result map[string]any) error {
	if method == "tasks/list" {
		items, _ := result["tasks"].([]any)
		kept := make([]any, 0, len(items))
		for _, it := range items {
			t, _ := it.(map[string]any)
			id, _ := t["taskId"].(string)
			if id != "" && x.p.tasks.owns(x.b.name, id, x.peer) {
				kept = append(kept, it)
			} else {
				x.aud.hidden++
			}
		}
		if _, ok := result["tasks"]; ok {
			result["tasks"] = kept
		}
		return nil
	}
	t, ok := result["task"].(map[string]any)
	if !ok || method == "tasks/get" || method == "tasks/cancel" {
		return nil
	}
	id, _ := t["taskId"].(string)
	if id == "" {
		return nil
	}
	if x.peer == "" || !x.p.tasks.bind(x.b.name, id, x.peer) {
		return upstreamErr("task id already bound to another identity, or no identity to bind it to")
	}
	x.aud.tasksCreated++
	return nil
}

// taskVisible hides another caller's task status notifications.
func (x *exchange) taskVisible(m *message) bool {
	if m.method != "notifications/tasks/status" {
		return true
	}
	id, _ := m.params["taskId"].(string)
	return x.p.tasks.owns(x.b.name, id, x.peer)
}

// takePending finds the client request a response answers (its method and
// call): this exchange's own requests, or on a GET (resumed) stream the
// session's.
func (x *exchange) takePending(key string) (pendingReq, bool) {
	if pr, ok := x.pending[key]; ok {
		delete(x.pending, key)
		if x.sess != nil {
			x.p.sessions.takePending(x.sess, key)
		}
		return pr, true
	}
	if x.sess != nil && x.httpMethod == http.MethodGet {
		return x.p.sessions.takePending(x.sess, key)
	}
	return pendingReq{}, false
}

// authorize asks the gateway; without an Authorizer everything is denied.
func authorize(ctx context.Context, env *protocol.ResponseEnv, calls []protocol.Call) ([]protocol.Decision, error) {
	if env == nil || env.Authorize == nil {
		return make([]protocol.Decision, len(calls)), nil
	}
	ds, err := env.Authorize(ctx, calls)
	if err == nil && len(ds) != len(calls) {
		err = errors.New("authorizer returned fewer decisions than calls")
	}
	if err != nil {
		return nil, &protocol.Error{Status: http.StatusForbidden, Code: protocol.CodePolicyError, Message: "response could not be authorized", Err: err}
	}
	return ds, nil
}

// serverCall is the Call for a server→client request or notification.
func (x *exchange) serverCall(m *message) (protocol.Call, bool) {
	info, ok := serverMethods[m.method]
	if !ok || info.notification != (m.kind == kindNotification) {
		return protocol.Call{}, false
	}
	res := x.baseResource(m.method)
	res["direction"] = "server_to_client"
	switch m.method {
	case "notifications/resources/updated":
		if uri, ok := m.params["uri"].(string); ok {
			res["uri"] = uri
		}
	case "elicitation/create":
		mode, _ := m.params["mode"].(string)
		if mode == "" {
			mode = "form"
		}
		res["mode"] = mode
		if u, ok := m.params["url"].(string); ok {
			res["url"] = u
		}
	case "sampling/createMessage":
		if n, ok := jsonstrict.Int(m.params["maxTokens"]); ok {
			res["max_tokens"] = n
		}
	}
	return protocol.Call{Action: info.action, Operation: m.method, Resource: res}, true
}

// filterList removes from one page of a list result every item the caller
// could not use, deciding one Call per item in one batch, as if the caller
// called the tool, read the resource or got the prompt. Pagination passes
// through: a short or empty page still carries nextCursor.
func (x *exchange) filterList(ctx context.Context, env *protocol.ResponseEnv, method, field, itemMethod string, result map[string]any) error {
	raw, present := result[field]
	if !present {
		return nil
	}
	items, _ := raw.([]any)
	calls := make([]protocol.Call, 0, len(items))
	keep := make([]any, 0, len(items))
	for _, it := range items {
		obj, ok := it.(map[string]any)
		if !ok {
			x.aud.hidden++
			continue
		}
		res := x.baseResource(itemMethod)
		res["listing"] = true
		action := protocol.ActionRead
		var guards map[string]any
		switch method {
		case "tools/list":
			name, _ := obj["name"].(string)
			if !validToolName(name) {
				// Homoglyphs, invisible characters and lookalikes are how one
				// tool shadows another; 2025-11-25 names are [A-Za-z0-9_.-]{1,128}.
				x.aud.hidden++
				x.aud.badNames++
				continue
			}
			if !x.checkPin(name, obj) {
				continue
			}
			res["tool"] = name
			action = protocol.ActionInvoke
			// The definition addresses the model: inspect it as a tool
			// description and let policy decide on the verdict with the
			// item (tool poisoning is hidden like a tool the caller may
			// not use). Tools hidden by their pin are not worth a scan.
			guards = x.inspectTool(ctx, obj)
		case "resources/list":
			uri, _ := obj["uri"].(string)
			if uri == "" {
				x.aud.hidden++
				continue
			}
			res["uri"] = uri
		case "resources/templates/list":
			t, _ := obj["uriTemplate"].(string)
			if t == "" {
				x.aud.hidden++
				continue
			}
			res["uri_template"] = t
		case "prompts/list":
			name, _ := obj["name"].(string)
			if name == "" {
				x.aud.hidden++
				continue
			}
			res["prompt"] = name
		}
		if method != "tools/list" {
			// Resource, template and prompt listings address the model
			// too (descriptions, prompt arguments): the same scan, the
			// verdict on the item's call.
			guards = x.inspectListItem(ctx, obj)
		}
		calls = append(calls, protocol.Call{Action: action, Operation: itemMethod, Resource: res, Guards: guards})
		keep = append(keep, obj)
	}
	var ds []protocol.Decision
	if len(calls) > 0 {
		var err error
		if ds, err = authorize(ctx, env, calls); err != nil {
			return err
		}
	}
	out := keep[:0]
	for i, it := range keep {
		shown := ds[i].Allow && obligationProblem(ds[i]) == ""
		if shown {
			out = append(out, it)
		} else {
			x.aud.hidden++
		}
		if calls[i].Guards != nil {
			o := guardHiddenItem
			if method == "tools/list" {
				o = guardHiddenTool
			}
			x.aud.guard.decided(shown, o)
		}
	}
	x.aud.listed += len(out)
	result[field] = out
	// A filtered page is this caller's view: no shared cache may keep it.
	if _, ok := result["cacheScope"]; ok || x.version == Rev20260728 {
		result["cacheScope"] = "private"
	}
	return nil
}

func validToolName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// checkInstructions compares the server's instructions with their pin;
// in enforce mode changed or unpinned instructions are removed from the
// result (the client then has none), in warn mode only reported.
func (x *exchange) checkInstructions(result map[string]any) {
	if x.b.pins == nil {
		return
	}
	text, _ := result["instructions"].(string)
	st := x.b.pins.checkInstructions(text)
	if st == pinMatch {
		return
	}
	x.p.pinCount.WithLabelValues(x.b.name, "instructions_"+st).Inc()
	x.aud.pinChanges = append(x.aud.pinChanges, "(instructions):"+st)
	if x.b.opt.PinMode == PinEnforce {
		delete(result, "instructions")
	}
}

// checkPin records a listed tool's pin status and header bindings and
// reports whether it may be shown.
func (x *exchange) checkPin(name string, tool map[string]any) bool {
	obs := toolObs{status: pinMatch}
	if x.version == Rev20260728 {
		// Mirrored Mcp-Param-* headers exist only in 2026-07-28.
		schema, _ := tool["inputSchema"].(map[string]any)
		obs.bindings = schemaBindings(schema, nil, nil)
	}
	if x.b.pins != nil {
		obs.status = x.b.pins.check(name, tool)
	}
	x.b.obs.set(name, obs)
	if obs.status == pinMatch {
		return true
	}
	x.p.pinCount.WithLabelValues(x.b.name, obs.status).Inc()
	x.aud.pinChanges = append(x.aud.pinChanges, name+":"+obs.status)
	x.p.log.LogAttrs(context.Background(), slog.LevelWarn, "mcp tool definition differs from its pin",
		slogStr("backend", x.b.name), slogStr("tool", name), slogStr("pin_status", obs.status), slogStr("pin_mode", x.b.opt.PinMode))
	if x.b.opt.PinMode == PinEnforce {
		x.aud.pinHidden++
		return false
	}
	return true
}

// sseHook re-emits an upstream event stream event by event through
// sse.Filter: comments pass as keep-alives, priming events (id/retry
// without data) pass as they are, message events are filtered like a JSON
// body, anything else is dropped. An event whose messages were all dropped
// disappears entirely. Warden's own answers (refused requests of a batch)
// go first.
type sseHook struct {
	x   *exchange
	ctx context.Context // request-scoped; the hook lives as long as the response
	env *protocol.ResponseEnv
	pre []byte
}

var _ sse.Hook = (*sseHook)(nil)

func (h *sseHook) Event(dst []byte, ev sse.Event) ([]byte, error) {
	if h.pre != nil {
		dst, h.pre = append(dst, h.pre...), nil
	}
	if ev.Type == "endpoint" {
		h.x.aud.streamError = CodeLegacyTransport
		return dst, upstreamErr("legacy HTTP+SSE endpoint event")
	}
	if ev.Type != "" && ev.Type != "message" {
		h.x.aud.serverDropped++
		return dst, nil
	}
	out := sse.Event{ID: ev.ID, HasID: ev.HasID, Retry: ev.Retry, HasRetry: ev.HasRetry}
	if ev.HasData && ev.Data != "" {
		msgs, batch, err := h.x.processData(h.ctx, h.env, []byte(ev.Data))
		if err != nil {
			h.x.aud.streamError = "upstream_invalid_event"
			return dst, err
		}
		if len(msgs) == 0 {
			return dst, nil
		}
		var v any = msgs
		if !batch && len(msgs) == 1 {
			v = msgs[0]
		}
		b, err := jsonstrict.Marshal(v)
		if err != nil {
			h.x.aud.streamError = "upstream_invalid_event"
			return dst, err
		}
		out.Data, out.HasData = string(b), true
	} else if !ev.HasID && !ev.HasRetry {
		return dst, nil
	}
	return sse.AppendEvent(dst, out)
}

func (h *sseHook) End(dst []byte, reason error) ([]byte, error) {
	if h.pre != nil {
		dst, h.pre = append(dst, h.pre...), nil
	}
	if reason != nil && h.x.aud.streamError == "" {
		h.x.aud.streamError = "upstream_stream_broken"
		if errors.Is(reason, io.ErrClosedPipe) {
			h.x.aud.streamError = "client_closed"
		}
	}
	return dst, reason
}
