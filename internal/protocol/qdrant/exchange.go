package qdrant

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
)

// exchange is one Qdrant request and its response.
type exchange struct {
	p   *Protocol
	opt Options
	m   *match

	tree    map[string]any
	raw     []byte // admin uploads, forwarded unparsed
	bodyLen int
	calls   []protocol.Call

	// hasIDExamples is true when the request resolves points by id inside a
	// query (recommend examples, nearest by id, discover context).
	hasIDExamples bool
	// withLookup is true when a groups request pulls points from another
	// collection (with_lookup); lookupCall is that collection's index in
	// calls.
	withLookup bool
	lookupCall int
	// guard is the gateway's content inspection (nil: guardrails off).
	guard protocol.Guard

	// Set by Forward.
	decision string // "allow", or "deny" with refusal the reason code
	refusal  string
	tenant   *Tenant
	reasons  []string
	applied  []string
	userWith any  // the client's with_payload on a tenant-bound retrieve
	forced   bool // with_payload was forced to check the tenant
	// modes says, per sub-request of a tenant-bound read, how to give the
	// client the payload it asked for after Warden exposed the tenant key.
	modes []uint8

	// Response side.
	hidden    int
	leaked    int
	alert     string
	respError string
	scan      *guardScan // nil until a response's points were scanned
}

var _ protocol.Exchange = (*exchange)(nil)

// Parse implements protocol.Protocol. It classifies req.HTTP as the
// upstream will route it (after any route prefix was stripped).
func (p *Protocol) Parse(_ context.Context, req *protocol.Request) (protocol.Exchange, error) {
	r := req.HTTP
	path, perr := canonicalPath(r.URL.EscapedPath())
	if perr != nil {
		return nil, perr
	}
	m, perr := resolve(r.Method, path)
	if perr != nil {
		return nil, perr
	}
	if perr := checkQuery(m.r.class, r.URL.RawQuery); perr != nil {
		return nil, perr
	}
	x := &exchange{p: p, opt: p.options(req.Backend), m: m, bodyLen: len(req.Body), guard: req.Guard}
	switch m.r.body {
	case '-':
		if len(req.Body) != 0 {
			return nil, errf(http.StatusBadRequest, protocol.CodeInvalidRequest, "this endpoint takes no request body")
		}
	case 'r':
		x.raw = req.Body
	case 'j', 'o':
		if len(req.Body) == 0 && m.r.body == 'o' {
			break
		}
		obj, err := p.parseBody(r, req.Body)
		if err != nil {
			return nil, err
		}
		x.tree = obj
	}
	res := x.collectionResource(m.collection)
	x.calls = []protocol.Call{{Action: m.r.action, Operation: m.r.op, Resource: res}}
	if x.tree != nil {
		if err := x.inspect(); err != nil {
			return nil, err
		}
	}
	return x, nil
}

// collectionResource is a Call resource for name: the collection it
// resolves to through the configured aliases, and the alias as written.
func (x *exchange) collectionResource(name string) map[string]any {
	res := map[string]any{}
	if name == "" {
		return res
	}
	if target, ok := x.opt.Aliases[name]; ok {
		res[resourceCollection] = target
		res["alias"] = name
		return res
	}
	res[resourceCollection] = name
	return res
}

func (p *Protocol) parseBody(r *http.Request, body []byte) (map[string]any, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, errf(http.StatusUnsupportedMediaType, protocol.CodeUnsupportedMedia, "Content-Type must be application/json")
	}
	if len(body) == 0 {
		return nil, errf(http.StatusBadRequest, protocol.CodeInvalidJSON, "request body is required")
	}
	v, err := jsonstrict.Parse(body, jsonstrict.Options{MaxDepth: p.cfg.MaxDepth, MaxBytes: p.cfg.MaxBodyBytes})
	if err != nil {
		return nil, jsonError(err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errf(http.StatusBadRequest, protocol.CodeInvalidRequest, "request body must be a JSON object")
	}
	return obj, nil
}

// jsonError maps a jsonstrict failure to a client error; ambiguous
// documents get their own code.
func jsonError(err error) *protocol.Error {
	var je *jsonstrict.Error
	if !errors.As(err, &je) {
		return &protocol.Error{Status: http.StatusBadRequest, Code: protocol.CodeInvalidJSON, Message: "invalid JSON", Err: err}
	}
	code, status := protocol.CodeInvalidJSON, http.StatusBadRequest
	switch je.Msg {
	case jsonstrict.MsgDuplicateKey, jsonstrict.MsgFoldedKey, jsonstrict.MsgFoldedKnownKey:
		code = CodeAmbiguousJSON
	case jsonstrict.MsgTooLarge:
		code, status = protocol.CodeBodyTooLarge, http.StatusRequestEntityTooLarge
	}
	return &protocol.Error{Status: status, Code: code, Message: fmt.Sprintf("invalid JSON body: %s at offset %d", je.Msg, je.Offset), Err: err}
}

// Calls implements protocol.Exchange. The first call is the request
// itself; further calls are reads of the collections named in lookup_from
// and with_lookup.
func (x *exchange) Calls() []protocol.Call { return x.calls }

// Forward implements protocol.Exchange: every call must be allowed; the
// only obligations understood are "tenant" (applied here) and "limits"
// (applied by the gateway). The body sent is the canonical re-encoding of
// the parsed request with the tenant confinement applied.
func (x *exchange) Forward(ctx context.Context, ds []protocol.Decision) ([]byte, error) {
	b, err := x.forward(ds)
	if err != nil {
		x.decision, x.refusal = "deny", protocol.AsError(err).Code
		x.p.log.DebugContext(ctx, "qdrant: request refused", "operation", x.m.r.op, "collection", x.m.collection, "code", x.refusal)
		return nil, err
	}
	x.decision = "allow"
	return b, nil
}

func (x *exchange) forward(ds []protocol.Decision) ([]byte, error) {
	if len(ds) != len(x.calls) {
		return nil, internal(fmt.Errorf("qdrant: %d decisions for %d calls", len(ds), len(x.calls)))
	}
	for i, d := range ds {
		if !d.Allow {
			if i > 0 {
				return nil, errf(http.StatusForbidden, protocol.CodePolicyDenied, "request denied by policy: lookup collection not allowed")
			}
			return nil, errf(http.StatusForbidden, protocol.CodePolicyDenied, "request denied by policy")
		}
		x.reasons = append(x.reasons, d.Reasons...)
		t, err := x.tenantOf(d.Obligations)
		if err != nil {
			return nil, err
		}
		switch {
		case i == 0:
			x.tenant = t
		case t != nil && (x.tenant == nil || *t != *x.tenant):
			return nil, errf(http.StatusForbidden, CodeTenantConflict, "request denied: lookup collection is bound to another tenant")
		}
	}
	if x.tenant != nil {
		if err := x.confine(); err != nil {
			return nil, err
		}
	}
	if x.raw != nil {
		return x.raw, nil
	}
	if x.tree == nil {
		return nil, nil
	}
	b, err := jsonstrict.AppendMarshal(make([]byte, 0, x.bodyLen+128), x.tree)
	if err != nil {
		return nil, internal(fmt.Errorf("qdrant: re-encode request: %w", err))
	}
	return b, nil
}

// Audit implements protocol.Exchange. It never includes payloads, vectors
// or filters; tenant values are identifiers from policy, not data.
func (x *exchange) Audit() map[string]any {
	a := map[string]any{
		"operation": x.m.r.op,
		"action":    x.m.r.action,
	}
	if c, ok := x.calls[0].Resource[resourceCollection]; ok {
		a["collection"] = c
	}
	if al, ok := x.calls[0].Resource["alias"]; ok {
		a["alias"] = al
	}
	if x.decision != "" {
		a["decision"] = x.decision
	}
	if x.refusal != "" {
		a["refusal"] = x.refusal
	}
	if len(x.calls) > 1 {
		var ls []any
		for _, c := range x.calls[1:] {
			ls = append(ls, c.Resource[resourceCollection])
		}
		a["lookup_collections"] = ls
	}
	if len(x.reasons) > 0 {
		rs := make([]any, len(x.reasons))
		for i, r := range x.reasons {
			rs[i] = r
		}
		a["decision_reasons"] = rs
	}
	if x.tenant != nil {
		a["tenant"] = map[string]any{"field": x.tenant.Field, "value": x.tenant.Value}
	}
	if len(x.applied) > 0 {
		as := make([]any, len(x.applied))
		for i, s := range x.applied {
			as[i] = s
		}
		a["obligations_applied"] = as
	}
	if x.hidden > 0 {
		a["hidden"] = x.hidden
	}
	if x.alert != "" {
		a["alert"] = x.alert
		a["alert_points"] = x.leaked
	}
	if x.respError != "" {
		a["response_error"] = x.respError
	}
	if x.scan != nil {
		a["response_guard"] = x.scan.audit()
	}
	return a
}

func (x *exchange) apply(s string) {
	for _, a := range x.applied {
		if a == s {
			return
		}
	}
	x.applied = append(x.applied, s)
}
