package mcp

import (
	"context"
	"log/slog"
	"sort"
	"strings"

	"github.com/wardenhq/warden/internal/protocol"
)

// Response-side guardrails. An MCP server is third-party text on its way
// into the model's context: tool results and errors (indirect prompt
// injection), resource contents, prompt messages, tool, resource and
// prompt listings and server instructions (tool poisoning), and the
// prompts it asks the client to sample or the questions it asks the user.
// When the gateway lends a Guard (protocol.Request.Guard), each of them is
// inspected; whatever the detectors found something in is decided by
// policy again, with the verdict in input.guards (protocol.Call.Guards) of
// the call it belongs to. Policy has the last word: the default library
// denies a blocked verdict in these contexts (guard_blocked:<category>),
// another policy may let a flagged text through. Clean text costs one scan
// and no policy evaluation beyond the decisions made anyway (list items
// and server requests are decided in any case; their verdict rides along).

// resultGuardContext is the guard context the result of each inspected
// request method is read in. Results of other methods are not inspected.
var resultGuardContext = map[string]string{
	"tools/call":     protocol.GuardToolOutput,
	"tasks/result":   protocol.GuardToolOutput, // a task-augmented tools/call delivers its result here
	"resources/read": protocol.GuardDocument,
	"prompts/get":    protocol.GuardDocument,
}

// resultNoun names what a withheld result was, for the error message.
var resultNoun = map[string]string{
	"tools/call":     "tool result",
	"tasks/result":   "task result",
	"resources/read": "resource contents",
	"prompts/get":    "prompt",
}

// errorNoun names what a withheld error response was.
var errorNoun = map[string]string{
	"tools/call":     "tool error",
	"tasks/result":   "task error",
	"resources/read": "resource error",
	"prompts/get":    "prompt error",
}

// flaggedResult is a response (result or error) whose text the guard found
// something in, awaiting policy.
type flaggedResult struct {
	idx    int // index of the response in the unit's output
	id     any // JSON-RPC id
	method string
	noun   string        // what is withheld, for the error message
	call   protocol.Call // the request's call, with Guards set
	// strip, when set, removes the flagged text from the result instead of
	// withholding the whole response (initialize instructions: a session
	// without them still works).
	strip func()
}

// flag is the flaggedResult for a verdict on text answering pr: the
// request's own call with the verdict in Guards.
func (x *exchange) flag(pr pendingReq, verdict map[string]any) flaggedResult {
	c := pr.call
	if c.Resource == nil {
		// Not expected for results and errors (every pending request of an
		// inspected method keeps its call; initialize is not kept by the
		// session); decide on what is known rather than not at all.
		c = protocol.Call{Action: clientMethods[pr.method].action, Operation: pr.method, Resource: x.baseResource(pr.method)}
	}
	c.Guards = verdict
	return flaggedResult{method: pr.method, noun: resultNoun[pr.method], call: c}
}

// inspectResult scans the result of a response to pr. It reports the call
// to decide when the guard found something (Inspection.Verdict non-nil:
// findings, or a scan over budget).
func (x *exchange) inspectResult(ctx context.Context, pr pendingReq, result map[string]any) (flaggedResult, bool) {
	gctx, ok := resultGuardContext[pr.method]
	if !ok || x.guard == nil {
		return flaggedResult{}, false
	}
	var v any = result
	if rt, _ := result["resultType"].(string); rt == "input_required" {
		// 2026-07-28: not the result yet. Its inputRequests are inspected
		// and decided as the server requests they stand for (see
		// inspectServerRequest); requestState is opaque to the client (and
		// often a signed or encrypted token a secret detector would flag);
		// whatever else the server put there is read like the result.
		rest := make(map[string]any, len(result))
		for k, fv := range result {
			if k != "inputRequests" && k != "requestState" && k != "resultType" {
				rest[k] = fv
			}
		}
		if len(rest) == 0 {
			return flaggedResult{}, false
		}
		v = rest
	}
	ins := x.guard.Inspect(ctx, gctx, inspectable(v.(map[string]any)))
	x.aud.guard.note(ins)
	if ins.Verdict == nil {
		return flaggedResult{}, false
	}
	return x.flag(pr, ins.Verdict), true
}

// inspectError scans the message and data of a JSON-RPC error answering
// pr, in the context its result would have been read in: clients show
// tool errors to the model like tool results.
func (x *exchange) inspectError(ctx context.Context, pr pendingReq, errObj map[string]any) (flaggedResult, bool) {
	gctx, ok := resultGuardContext[pr.method]
	if !ok || x.guard == nil {
		return flaggedResult{}, false
	}
	view := map[string]any{"message": errObj["message"]}
	if d, ok := errObj["data"]; ok {
		view["data"] = d
	}
	ins := x.guard.Inspect(ctx, gctx, view)
	x.aud.guard.note(ins)
	if ins.Verdict == nil {
		return flaggedResult{}, false
	}
	f := x.flag(pr, ins.Verdict)
	f.noun = errorNoun[pr.method]
	return f, true
}

// inspectInitialize scans what an initialize (or server/discover) result
// tells the model about the server: instructions, and the serverInfo
// title and description (2025-11-25), as tool descriptions. A flagged
// text that policy denies is stripped from the result; the session goes
// on without it. Instructions already removed by their pin are not
// scanned.
func (x *exchange) inspectInitialize(ctx context.Context, pr pendingReq, result map[string]any) []flaggedResult {
	if x.guard == nil {
		return nil
	}
	var out []flaggedResult
	if s, ok := result["instructions"].(string); ok && s != "" {
		ins := x.guard.Inspect(ctx, protocol.GuardToolDescription, s)
		x.aud.guard.note(ins)
		if ins.Verdict != nil {
			f := x.flag(pr, ins.Verdict)
			f.strip = func() { delete(result, "instructions") }
			out = append(out, f)
		}
	}
	if si, ok := result["serverInfo"].(map[string]any); ok {
		view := map[string]any{}
		for _, k := range serverInfoText {
			if s, ok := si[k].(string); ok && s != "" {
				view[k] = s
			}
		}
		if len(view) > 0 {
			ins := x.guard.Inspect(ctx, protocol.GuardToolDescription, view)
			x.aud.guard.note(ins)
			if ins.Verdict != nil {
				f := x.flag(pr, ins.Verdict)
				f.strip = func() {
					for _, k := range serverInfoText {
						delete(si, k)
					}
				}
				out = append(out, f)
			}
		}
	}
	return out
}

// serverInfoText are the optional serverInfo fields that describe the
// server in prose; name and version are required and are kept.
var serverInfoText = []string{"title", "description"}

// inspectServerRequest scans the params of a server→client request that
// puts server text in front of the model or the user: sampling/createMessage
// (messages, systemPrompt, tools) and elicitation/create (message,
// requestedSchema titles and descriptions, url), as tool output. The
// verdict rides on the request's own call (action server_request), so
// policy drops a poisoned request like one the caller's role does not
// allow. nil: nothing found, another method, or no Guard.
func (x *exchange) inspectServerRequest(ctx context.Context, method string, params map[string]any) map[string]any {
	if x.guard == nil || params == nil || method != "sampling/createMessage" && method != "elicitation/create" {
		return nil
	}
	view := params
	if _, ok := params["_meta"]; ok {
		// Protocol metadata (progress tokens, related task), not text for
		// the model.
		view = shallowCopy(params)
		delete(view, "_meta")
	}
	ins := x.guard.Inspect(ctx, protocol.GuardToolOutput, inspectable(view))
	x.aud.guard.note(ins)
	return ins.Verdict
}

// decideResults asks policy about the flagged results of one unit (one
// Authorize) and replaces each denied one in out by a JSON-RPC error for
// its id, or strips its text (initialize). An Authorize error denies them
// all (fail closed).
func (x *exchange) decideResults(ctx context.Context, env *protocol.ResponseEnv, flagged []flaggedResult, out []any) {
	calls := make([]protocol.Call, len(flagged))
	for i, f := range flagged {
		calls[i] = f.call
	}
	ds, err := authorize(ctx, env, calls)
	if err != nil {
		x.p.log.LogAttrs(ctx, slog.LevelWarn, "mcp results withheld: policy error",
			slogStr("backend", x.b.name), slog.Int("results", len(flagged)), slog.Any("error", err))
	}
	for i, f := range flagged {
		var reason string
		var guardReasons []string
		switch {
		case err != nil:
			reason = protocol.CodePolicyError
		case !ds[i].Allow:
			reason, guardReasons = deniedReason(ds[i].Reasons)
		case obligationProblem(ds[i]) != "":
			reason = CodeObligation
		}
		if reason == "" {
			x.aud.guard.decided(true, guardWithheld)
			continue
		}
		msg := "mcp result withheld"
		if f.strip != nil {
			f.strip()
			x.aud.guard.decided(false, guardStripped)
			msg = "mcp server instructions removed"
		} else {
			x.aud.guard.decided(false, guardWithheld)
			out[f.idx] = withheldObject(f.id, f.noun, reason, guardReasons)
		}
		if err == nil {
			x.p.log.LogAttrs(ctx, slog.LevelWarn, msg,
				slogStr("backend", x.b.name), slogStr("method", f.method), slogStr("reason", reason),
				slog.Any("reasons", ds[i].Reasons))
		}
	}
}

// inspectTool scans one tool definition of a tools/list page (the whole
// object: name, title, description, schemas, annotations) and returns the
// verdict for the item's Call.Guards (nil: nothing found, or no Guard).
func (x *exchange) inspectTool(ctx context.Context, tool map[string]any) map[string]any {
	if x.guard == nil {
		return nil
	}
	ins := x.guard.Inspect(ctx, protocol.GuardToolDescription, tool)
	x.aud.guard.note(ins)
	return ins.Verdict
}

// inspectListItem scans what a resources/list, resources/templates/list
// or prompts/list item tells the model (name, title, description; a
// prompt's arguments) as a tool description, and returns the verdict for
// the item's Call.Guards (nil: nothing found, or no Guard). URIs, MIME
// types, annotations and icons are not prose and are left out.
func (x *exchange) inspectListItem(ctx context.Context, item map[string]any) map[string]any {
	if x.guard == nil {
		return nil
	}
	view := make(map[string]any, 4)
	for _, k := range [...]string{"name", "title", "description"} {
		if v, ok := item[k]; ok {
			view[k] = v
		}
	}
	if args, ok := item["arguments"].([]any); ok { // prompts
		as := make([]any, 0, len(args))
		for _, av := range args {
			a, _ := av.(map[string]any)
			o := map[string]any{}
			for _, k := range [...]string{"name", "title", "description"} {
				if v, ok := a[k]; ok {
					o[k] = v
				}
			}
			as = append(as, o)
		}
		view["arguments"] = as
	}
	ins := x.guard.Inspect(ctx, protocol.GuardToolDescription, view)
	x.aud.guard.note(ins)
	return ins.Verdict
}

// deniedReason is the error.data.reason of a result policy denied:
// guard_blocked with the policy's guard_blocked:<category> reasons when
// the guard verdict is why, policy_denied otherwise.
func deniedReason(reasons []string) (string, []string) {
	var g []string
	for _, r := range reasons {
		if strings.HasPrefix(r, protocol.CodeGuardBlocked+":") {
			g = append(g, r)
		}
	}
	if len(g) > 0 {
		return protocol.CodeGuardBlocked, g
	}
	return protocol.CodePolicyDenied, nil
}

// withheldObject is the JSON-RPC error that replaces a withheld result. It
// names the reason (policy reason ids, never the text) and carries Warden's
// refusal code, like any other refusal.
func withheldObject(id any, noun, reason string, guardReasons []string) map[string]any {
	if noun == "" {
		noun = "result"
	}
	detail := reason
	if len(guardReasons) > 0 {
		detail = strings.Join(guardReasons, ", ")
	}
	e := errorObject(id, reason, noun+" withheld by Warden: "+detail)
	if len(guardReasons) > 0 {
		rs := make([]any, len(guardReasons))
		for i, r := range guardReasons {
			rs[i] = r
		}
		e["error"].(map[string]any)["data"].(map[string]any)["reasons"] = rs
	}
	return e
}

// inspectable is what the guard reads of a result: all of it except the
// base64 payloads of image and audio content blocks, which are not text a
// model reads as instructions and would only spend the scan budget (a
// screenshot is megabytes; over budget blocks under fail mode closed).
// Resource blobs are kept: a text/plain blob is text. result itself is
// returned, not copied, when it has no such block.
func inspectable(result map[string]any) any {
	var view map[string]any
	if c, ok := result["content"].([]any); ok { // tools/call, tasks/result
		if nc, changed := withoutBinary(c); changed {
			view = shallowCopy(result)
			view["content"] = nc
		}
	}
	if ms, ok := result["messages"].([]any); ok { // prompts/get
		var nms []any
		for i, mv := range ms {
			msg, _ := mv.(map[string]any)
			var nb any
			switch b := msg["content"].(type) {
			case map[string]any:
				if binaryBlock(b) {
					nb = stripData(b)
				}
			case []any:
				if nc, changed := withoutBinary(b); changed {
					nb = nc
				}
			}
			if nb == nil {
				continue
			}
			if nms == nil {
				nms = append([]any(nil), ms...)
			}
			nm := shallowCopy(msg)
			nm["content"] = nb
			nms[i] = nm
		}
		if nms != nil {
			if view == nil {
				view = shallowCopy(result)
			}
			view["messages"] = nms
		}
	}
	if view == nil {
		return result
	}
	return view
}

func withoutBinary(blocks []any) ([]any, bool) {
	var out []any
	for i, b := range blocks {
		o, ok := b.(map[string]any)
		if !ok || !binaryBlock(o) {
			continue
		}
		if out == nil {
			out = append([]any(nil), blocks...)
		}
		out[i] = stripData(o)
	}
	return out, out != nil
}

func binaryBlock(o map[string]any) bool {
	t, _ := o["type"].(string)
	_, has := o["data"]
	return has && (t == "image" || t == "audio")
}

func stripData(o map[string]any) map[string]any {
	c := shallowCopy(o)
	delete(c, "data")
	return c
}

func shallowCopy(m map[string]any) map[string]any {
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// guardAudit is what the response guard did, for the audit record: counts
// and rule ids, never text.
type guardAudit struct {
	scanned               bool
	withheld              int // results and errors replaced by Warden's error
	flagged               int // texts with findings that policy let through
	hiddenTools           int // tool definitions with findings that policy hid
	hiddenItems           int // resources, templates and prompts with findings that policy hid
	strippedInstructions  int // initialize instructions or server info with findings that policy removed
	droppedServerRequests int // sampling and elicitation requests (or input requests) with findings that policy dropped
	rules                 []string
}

// guardOutcome is what happened to a flagged text policy denied.
type guardOutcome uint8

const (
	guardWithheld guardOutcome = iota
	guardHiddenTool
	guardHiddenItem
	guardStripped
	guardDropped
)

// note records one inspection and the rule ids of its findings.
func (g *guardAudit) note(ins protocol.Inspection) {
	g.scanned = true
	cats, _ := ins.Verdict["categories"].(map[string]any)
	for _, cv := range cats {
		c, _ := cv.(map[string]any)
		rs, _ := c["rules"].([]any)
		for _, rv := range rs {
			if r, ok := rv.(string); ok {
				g.addRule(r)
			}
		}
	}
}

func (g *guardAudit) addRule(r string) {
	i := sort.SearchStrings(g.rules, r)
	if i < len(g.rules) && g.rules[i] == r {
		return
	}
	g.rules = append(g.rules, "")
	copy(g.rules[i+1:], g.rules[i:])
	g.rules[i] = r
}

// decided records policy's answer on a flagged text: passed, or what its
// denial did (o).
func (g *guardAudit) decided(passed bool, o guardOutcome) {
	if passed {
		g.flagged++
		return
	}
	switch o {
	case guardHiddenTool:
		g.hiddenTools++
	case guardHiddenItem:
		g.hiddenItems++
	case guardStripped:
		g.strippedInstructions++
	case guardDropped:
		g.droppedServerRequests++
	default:
		g.withheld++
	}
}

func (g *guardAudit) fields() map[string]any {
	rules := g.rules
	if rules == nil {
		rules = []string{}
	}
	return map[string]any{
		"scanned":                 true,
		"withheld":                g.withheld,
		"flagged":                 g.flagged,
		"hidden_tools":            g.hiddenTools,
		"hidden_items":            g.hiddenItems,
		"stripped_instructions":   g.strippedInstructions,
		"dropped_server_requests": g.droppedServerRequests,
		"rules":                   append([]string(nil), rules...),
	}
}
