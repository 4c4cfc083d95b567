package qdrant

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
)

// Audit and resource keys of the response guard.
const (
	auditResponseGuard = "response_guard"
	resourcePointID    = "point_id"
	// maxPointDepth bounds the walk of a response's result: Qdrant's deepest
	// shape (a batch of groups) is five levels down.
	maxPointDepth = 16
)

// guardScan is what the response guard did to one response, for the audit
// record: counts and rule ids, never text.
type guardScan struct {
	points   int // points whose payload was scanned
	flagged  int // points with findings, put to policy
	withheld int // flagged points policy denied, removed from the response
	rules    map[string]bool
}

func (g *guardScan) audit() map[string]any {
	ids := make([]string, 0, len(g.rules))
	for r := range g.rules {
		ids = append(ids, r)
	}
	sort.Strings(ids)
	rules := make([]any, len(ids))
	for i, r := range ids {
		rules[i] = r
	}
	return map[string]any{
		"scanned":  true,
		"points":   g.points,
		"flagged":  g.flagged,
		"withheld": g.withheld,
		"rules":    rules,
	}
}

// returnsPoints reports whether the read's response holds points with
// payloads: the searches, queries, recommendations, discoveries (single,
// batch, groups), scroll and retrieval by id. Count, facet and the distance
// matrix return no payload text.
func (x *exchange) returnsPoints() bool {
	if x.m.r.class == classRetrieve {
		return true
	}
	_, ok := pointsOps[x.m.r.op]
	return ok
}

// flaggedPoint is one point whose payload had findings.
type flaggedPoint struct {
	seq     int // position in walk order
	call    int // index in x.calls of the read that returned it
	id      any
	verdict map[string]any
}

// guardPoints scans the payload of every point in body's result as a
// retrieved document (protocol.GuardDocument): the text an agent would take
// into its context, so RAG poisoning stored in the collection is caught on
// the way out as well as on upsert. Points with findings go to policy in
// one Authorize call, each as the read that returned it plus the verdict
// (Call.Guards) and the point id; denied points are removed from their
// list, batch entry or group. changed is false when nothing was removed, so
// the caller can forward the upstream bytes as they were. Without an
// Authorizer, or when it fails, a response with flagged points is refused
// whole: fail closed.
func (x *exchange) guardPoints(ctx context.Context, body map[string]any, env *protocol.ResponseEnv) (changed bool, err error) {
	g := &guardScan{rules: map[string]bool{}}
	x.scan = g
	var flagged []flaggedPoint
	w := pointWalker{visit: func(pt map[string]any, lookup bool, seq int) bool {
		pl, ok := pt["payload"]
		if !ok || pl == nil {
			return true
		}
		g.points++
		in := x.guard.Inspect(ctx, protocol.GuardDocument, pl)
		if in.Findings == 0 && !in.Blocked {
			return true
		}
		g.flagged++
		addRules(g.rules, in.Verdict)
		call := 0
		if lookup && x.lookupCall > 0 {
			call = x.lookupCall
		}
		flagged = append(flagged, flaggedPoint{seq: seq, call: call, id: pt["id"], verdict: in.Verdict})
		return true
	}}
	w.walk(body["result"], false, 0)
	if w.tooDeep {
		x.respError = "malformed"
		return false, errf(http.StatusBadGateway, CodeUpstreamMalformed, "upstream response could not be checked")
	}
	if len(flagged) == 0 {
		return false, nil
	}
	denied, err := x.authorizePoints(ctx, flagged, env)
	if err != nil {
		return false, err
	}
	g.withheld = len(denied)
	if len(denied) == 0 {
		return false, nil
	}
	x.p.log.WarnContext(ctx, "qdrant: points withheld by guardrails",
		"operation", x.m.r.op, "collection", x.m.collection, "points", len(denied))
	w = pointWalker{visit: func(_ map[string]any, _ bool, seq int) bool { return !denied[seq] }}
	result, keep := w.walk(body["result"], false, 0)
	if !keep {
		// The result was the one point asked for (GET {c}/points/{id}).
		return false, errf(http.StatusForbidden, protocol.CodeGuardBlocked, "request denied: the point's payload was withheld by guardrails")
	}
	body["result"] = result
	return true, nil
}

// authorizePoints puts the flagged points to policy and returns the walk
// positions of the denied ones.
func (x *exchange) authorizePoints(ctx context.Context, flagged []flaggedPoint, env *protocol.ResponseEnv) (map[int]bool, error) {
	if env == nil || env.Authorize == nil {
		x.respError = "authorize"
		return nil, errf(http.StatusServiceUnavailable, protocol.CodePolicyError, "response could not be authorized")
	}
	calls := make([]protocol.Call, len(flagged))
	for i, f := range flagged {
		base := x.calls[f.call]
		res := make(map[string]any, len(base.Resource)+1)
		for k, v := range base.Resource {
			res[k] = v
		}
		res[resourcePointID] = idValue(f.id)
		calls[i] = protocol.Call{Action: base.Action, Operation: base.Operation, Resource: res, Guards: f.verdict}
	}
	ds, err := env.Authorize(ctx, calls)
	if err != nil || len(ds) != len(calls) {
		x.respError = "authorize"
		return nil, &protocol.Error{Status: http.StatusServiceUnavailable, Code: protocol.CodePolicyError, Message: "response could not be authorized", Err: err}
	}
	denied := map[int]bool{}
	for i, d := range ds {
		if !d.Allow {
			denied[flagged[i].seq] = true
		}
	}
	return denied, nil
}

// idValue is a point id as a Call resource value: an integer id as the
// number it is (json.Number keeps its exact text; the policy input takes
// that type), a UUID as its string.
func idValue(id any) any {
	if n, ok := id.(jsonstrict.Number); ok {
		return json.Number(n)
	}
	return id
}

// addRules adds the rule ids of an Inspection verdict
// (categories.<cat>.rules) to set. An over-budget verdict names no rule.
func addRules(set map[string]bool, verdict map[string]any) {
	cats, _ := verdict["categories"].(map[string]any)
	for _, c := range cats {
		cm, _ := c.(map[string]any)
		rs, _ := cm["rules"].([]any)
		for _, r := range rs {
			if s, ok := r.(string); ok {
				set[s] = true
			}
		}
	}
}

// pointWalker visits every point of a result in a fixed order (the shapes
// checkPoints walks: a record, lists, batch lists, {points},
// {groups:[{hits, lookup}]}) and removes those visit rejects. The order is
// the same on every walk of the same value, so a point's position (seq)
// names it from one walk to the next.
type pointWalker struct {
	// visit returns false to remove pt. lookup is true for a group's
	// with_lookup point.
	visit   func(pt map[string]any, lookup bool, seq int) bool
	seq     int
	tooDeep bool
}

// walk returns v with the rejected points removed, and false when v itself
// is a rejected point or a group left without hits (its id is a payload
// value of those hits).
func (w *pointWalker) walk(v any, lookup bool, depth int) (any, bool) {
	if depth > maxPointDepth {
		w.tooDeep = true
		return v, true
	}
	switch t := v.(type) {
	case []any:
		kept := t[:0]
		for _, e := range t {
			if e, keep := w.walk(e, lookup, depth+1); keep {
				kept = append(kept, e)
			}
		}
		return kept, true
	case map[string]any:
		if _, isPoint := t["id"]; isPoint {
			if _, isGroup := t["hits"]; !isGroup {
				seq := w.seq
				w.seq++
				return t, w.visit(t, lookup, seq)
			}
		}
		hits, _ := t["hits"].([]any)
		had := len(hits)
		for _, k := range [...]string{"points", "groups", "hits", "lookup"} {
			e, ok := t[k]
			if !ok {
				continue
			}
			if e, keep := w.walk(e, lookup || k == "lookup", depth+1); keep {
				t[k] = e
			} else {
				delete(t, k)
			}
		}
		if hits, ok := t["hits"].([]any); ok && had > 0 && len(hits) == 0 {
			return t, false
		}
	}
	return v, true
}
