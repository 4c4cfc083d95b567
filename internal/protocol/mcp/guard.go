package mcp

import (
	"context"
	"log/slog"
	"sort"
	"strings"

	"github.com/wardenhq/warden/internal/protocol"
)

// Response-side guardrails. An MCP server is third-party text on its way
// into the model's context: tool results (indirect prompt injection),
// resource contents, prompt messages and tool definitions (tool
// poisoning). When the gateway lends a Guard (protocol.Request.Guard), each
// of them is inspected; whatever the detectors found something in is
// decided by policy again, with the verdict in input.guards
// (protocol.Call.Guards). Policy has the last word: the default library
// denies a blocked verdict in these contexts (guard_blocked:<category>),
// another policy may let a flagged text through. Clean text costs one scan
// and no policy evaluation.

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

// flaggedResult is a response whose result the guard found something in,
// awaiting policy.
type flaggedResult struct {
	idx    int // index of the response in the unit's output
	id     any // JSON-RPC id
	method string
	call   protocol.Call // the request's call, with Guards set
}

// inspectResult scans the result of a response to pr. It reports the call
// to decide when the guard found something (Inspection.Verdict non-nil:
// findings, or a scan over budget).
func (x *exchange) inspectResult(ctx context.Context, pr pendingReq, result map[string]any) (flaggedResult, bool) {
	gctx, ok := resultGuardContext[pr.method]
	if !ok || x.guard == nil {
		return flaggedResult{}, false
	}
	if rt, _ := result["resultType"].(string); rt == "input_required" {
		// 2026-07-28: not the result yet; its inputRequests are decided
		// as server requests, and the final result is inspected.
		return flaggedResult{}, false
	}
	ins := x.guard.Inspect(ctx, gctx, inspectable(result))
	x.aud.guard.note(ins)
	if ins.Verdict == nil {
		return flaggedResult{}, false
	}
	c := pr.call
	if c.Resource == nil {
		// Not expected (every pending request of an inspected method keeps
		// its call); decide on what is known rather than not at all.
		c = protocol.Call{Action: clientMethods[pr.method].action, Operation: pr.method, Resource: x.baseResource(pr.method)}
	}
	c.Guards = ins.Verdict
	return flaggedResult{method: pr.method, call: c}, true
}

// decideResults asks policy about the flagged results of one unit (one
// Authorize) and replaces each denied one in out by a JSON-RPC error for
// its id. An Authorize error withholds them all (fail closed).
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
			x.aud.guard.decided(true, false)
			continue
		}
		x.aud.guard.decided(false, false)
		out[f.idx] = withheldObject(f.id, f.method, reason, guardReasons)
		if err == nil {
			x.p.log.LogAttrs(ctx, slog.LevelWarn, "mcp result withheld",
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
func withheldObject(id any, method, reason string, guardReasons []string) map[string]any {
	noun := resultNoun[method]
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
	scanned     bool
	withheld    int // results replaced by an error
	flagged     int // results and tool definitions with findings that policy let through
	hiddenTools int // tool definitions with findings that policy hid
	rules       []string
}

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

// decided records policy's answer on a flagged result or tool definition.
func (g *guardAudit) decided(passed, tool bool) {
	switch {
	case passed:
		g.flagged++
	case tool:
		g.hiddenTools++
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
		"scanned":      true,
		"withheld":     g.withheld,
		"flagged":      g.flagged,
		"hidden_tools": g.hiddenTools,
		"rules":        append([]string(nil), rules...),
	}
}
