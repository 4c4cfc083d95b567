package qdrant

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
	"github.com/wardenhq/warden/internal/protocol/qdrant/qdranttest"
)

// rule is one row of the harness's policy table, shaped like a roles-file
// permission: who, which actions, which collections (exact or "prefix*"),
// and the obligations copied into the decision.
type rule struct {
	peer        string
	actions     []string
	operations  []string // empty: any
	collections []string // empty: any call, with or without a collection
	obligations map[string]any
}

func globOK(p, v string) bool {
	return p == "*" || p == v || strings.HasSuffix(p, "*") && strings.HasPrefix(v, strings.TrimSuffix(p, "*"))
}

func (r rule) allows(peer string, c protocol.Call) bool {
	if r.peer != peer {
		return false
	}
	okAction := false
	for _, a := range r.actions {
		if a == c.Action || a == "*" {
			okAction = true
		}
	}
	if !okAction {
		return false
	}
	if len(r.operations) > 0 && !slices.ContainsFunc(r.operations, func(p string) bool { return globOK(p, c.Operation) }) {
		return false
	}
	if len(r.collections) == 0 {
		return true
	}
	// As in the policy library, a constrained resource field must be present.
	coll, has := c.Resource[resourceCollection].(string)
	return has && slices.ContainsFunc(r.collections, func(p string) bool { return globOK(p, coll) })
}

// Identities used across the tests.
const (
	peerAcme   = "spiffe://example.org/agent/acme"
	peerGlobex = "spiffe://example.org/agent/globex"
	peerAdmin  = "spiffe://example.org/ops/admin"
	peerReader = "spiffe://example.org/agent/reader"
	peerHeader = "X-Test-Peer"
)

func tenantObl(v string) map[string]any {
	return map[string]any{"tenant": map[string]any{"field": "tenant_id", "value": v}}
}

func defaultRules() []rule {
	return []rule{
		{peer: peerAcme, actions: []string{"read", "write"}, collections: []string{"kb", "docs-*"}, obligations: tenantObl("acme")},
		{peer: peerGlobex, actions: []string{"read", "write"}, collections: []string{"kb"}, obligations: tenantObl("globex")},
		{peer: peerAdmin, actions: []string{"*"}},
		{peer: peerReader, actions: []string{"read"}, collections: []string{"kb", "docs-*"}},
		// Listing names no collection: granted by operation, as docs/qdrant.md shows.
		{peer: peerAcme, actions: []string{"read"}, operations: []string{"collections.list", "aliases.list", "service.*"}},
		{peer: peerGlobex, actions: []string{"read"}, operations: []string{"collections.list", "aliases.list", "service.*"}},
		{peer: peerReader, actions: []string{"read"}, operations: []string{"collections.list", "aliases.list", "service.*"}},
	}
}

// harness runs a Protocol the way the gateway does: the gateway's own
// path checks, Parse → Calls → decisions from a rule table → Forward →
// upstream (qdranttest, or any handler) → Response → Audit, on 127.0.0.1.
// The caller's identity comes from a test header, standing in for mTLS.
type harness struct {
	t     *testing.T
	up    *qdranttest.Server
	upURL string
	p     *Protocol
	srv   *httptest.Server
	rules []rule
	// guard is lent to the protocol in Request.Guard (nil: guardrails off).
	guard protocol.Guard
	// respAuthz, when set, decides response-path calls instead of the rule
	// table; noAuthz leaves ResponseEnv without an Authorizer.
	respAuthz protocol.Authorizer
	noAuthz   bool

	mu    sync.Mutex
	calls []protocol.Call
	audit map[string]any
}

func newHarness(t *testing.T, opt Options) *harness {
	t.Helper()
	up := qdranttest.Start()
	t.Cleanup(up.Close)
	h := &harness{t: t, up: up, upURL: up.URL, rules: defaultRules()}
	h.p = New(Config{Backends: map[string]Options{"q": opt}})
	h.srv = httptest.NewServer(h)
	t.Cleanup(h.srv.Close)
	seed(up)
	return h
}

// seed stores two tenants' points in kb and one collection per tenant.
func seed(up *qdranttest.Server) {
	n := func(s string) jsonstrict.Number { return jsonstrict.Number(s) }
	up.CreateCollection("kb", 3)
	up.CreateCollection("docs-eng", 3)
	up.CreateCollection("secret", 3)
	up.Put("kb",
		qdranttest.Point{ID: n("1"), Vector: []float64{1, 0, 0}, Payload: map[string]any{"tenant_id": "acme", "topic": "billing", "rank": n("1")}},
		qdranttest.Point{ID: n("2"), Vector: []float64{0.9, 0.1, 0}, Payload: map[string]any{"tenant_id": "acme", "topic": "support", "rank": n("5")}},
		qdranttest.Point{ID: n("3"), Vector: []float64{1, 0.01, 0}, Payload: map[string]any{"tenant_id": "globex", "topic": "billing", "rank": n("2")}},
		qdranttest.Point{ID: "5c56c793-69f3-4fbf-87e6-c4bf54c28c26", Vector: []float64{0, 1, 0}, Payload: map[string]any{"tenant_id": "globex", "topic": "secret"}},
	)
	up.Put("secret", qdranttest.Point{ID: n("9"), Vector: []float64{1, 0, 0}, Payload: map[string]any{"tenant_id": "acme"}})
	up.Put("docs-eng", qdranttest.Point{ID: n("7"), Vector: []float64{0, 0, 1}, Payload: map[string]any{"tenant_id": "acme"}})
	up.ResetRequests()
}

func (h *harness) decide(peer string, calls []protocol.Call) []protocol.Decision {
	ds := make([]protocol.Decision, len(calls))
	for i, c := range calls {
		for _, r := range h.rules {
			if r.allows(peer, c) {
				ds[i] = protocol.Decision{Allow: true, Reasons: []string{"allowed_by_role:test"}, Obligations: r.obligations}
				break
			}
		}
	}
	return ds
}

// gatewayRefuses mirrors the gateway's checks that run before a protocol
// sees the request: "//", "." and ".." segments, encoded "/", "\" and ".".
func gatewayRefuses(r *http.Request) bool {
	p := r.URL.EscapedPath()
	if strings.Contains(p, "//") {
		return true
	}
	for _, s := range strings.Split(p, "/") {
		if s == "." || s == ".." {
			return true
		}
	}
	l := strings.ToLower(p)
	return strings.Contains(l, "%2f") || strings.Contains(l, "%5c") || strings.Contains(l, "%2e")
}

func (h *harness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	peer := r.Header.Get(peerHeader)
	ctx := protocol.WithPeer(r.Context(), peer)
	if gatewayRefuses(r) {
		h.p.WriteError(w, r, protocol.Errorf(http.StatusBadRequest, protocol.CodeInvalidRequest, "path refused by gateway"))
		return
	}
	x, err := h.p.Parse(ctx, &protocol.Request{HTTP: r, Body: body, Backend: "q", Guard: h.guard})
	if err != nil {
		h.p.WriteError(w, r, protocol.AsError(err))
		return
	}
	calls := x.Calls()
	ds := h.decide(peer, calls)
	h.mu.Lock()
	h.calls, h.audit = calls, nil
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.audit = x.Audit()
		h.mu.Unlock()
	}()
	if !ds[0].Allow {
		h.p.WriteError(w, r, protocol.Errorf(http.StatusForbidden, protocol.CodePolicyDenied, "request denied by policy"))
		return
	}
	fwd, err := x.Forward(ctx, ds)
	if err != nil {
		h.p.WriteError(w, r, protocol.AsError(err))
		return
	}
	target := h.upURL + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	out, _ := http.NewRequestWithContext(ctx, r.Method, target, bytes.NewReader(fwd))
	if fwd != nil {
		out.Header.Set("Content-Type", "application/json")
	}
	out.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		h.p.WriteError(w, r, protocol.Errorf(http.StatusBadGateway, protocol.CodeUpstreamError, "upstream failed"))
		return
	}
	defer resp.Body.Close()
	var authz protocol.Authorizer = func(ctx context.Context, cs []protocol.Call) ([]protocol.Decision, error) {
		return h.decide(peer, cs), nil
	}
	switch {
	case h.noAuthz:
		authz = nil
	case h.respAuthz != nil:
		authz = h.respAuthz
	}
	if err := x.Response(ctx, resp, &protocol.ResponseEnv{Authorize: authz}); err != nil {
		h.p.WriteError(w, r, protocol.AsError(err))
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// result is one response seen by a test client.
type result struct {
	status int
	body   map[string]any
	raw    string
}

// do sends one request as peer and parses the (Qdrant-shaped) response.
func (h *harness) do(peer, method, path, body string) result {
	h.t.Helper()
	ctype := ""
	if body != "" {
		ctype = "application/json"
	}
	return h.doType(peer, method, path, ctype, body)
}

// doType is do with an explicit Content-Type.
func (h *harness) doType(peer, method, path, ctype, body string) result {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set(peerHeader, peer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	res := result{status: resp.StatusCode, raw: string(raw)}
	if v, err := jsonstrict.Parse(raw, jsonstrict.Options{}); err == nil {
		res.body, _ = v.(map[string]any)
	} else {
		h.t.Fatalf("%s %s: response is not JSON: %q", method, path, raw)
	}
	return res
}

func (h *harness) lastCalls() []protocol.Call {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls
}

func (h *harness) lastAudit() map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.audit
}

// errorMessage returns the Qdrant-format error text, failing if the body
// is not {"status":{"error":...},"time":...}.
func errorMessage(t *testing.T, r result) string {
	t.Helper()
	st, ok := r.body["status"].(map[string]any)
	if !ok {
		t.Fatalf("not a Qdrant error body: %s", r.raw)
	}
	msg, ok := st["error"].(string)
	if !ok || msg == "" {
		t.Fatalf("not a Qdrant error body: %s", r.raw)
	}
	if _, ok := r.body["time"]; !ok {
		t.Fatalf("Qdrant error body without time: %s", r.raw)
	}
	return msg
}

// ids returns the point ids in a result (points list, scored list, records).
func ids(v any) []string {
	var out []string
	switch t := v.(type) {
	case []any:
		for _, e := range t {
			out = append(out, ids(e)...)
		}
	case map[string]any:
		if id, ok := t["id"]; ok {
			b, _ := jsonstrict.Marshal(id)
			return []string{strings.Trim(string(b), `"`)}
		}
		if p, ok := t["points"]; ok {
			return ids(p)
		}
	}
	return out
}

// tenantsIn returns the tenant values found on points in v.
func tenantsIn(v any) map[string]bool {
	out := map[string]bool{}
	var walk func(any)
	walk = func(v any) {
		switch t := v.(type) {
		case []any:
			for _, e := range t {
				walk(e)
			}
		case map[string]any:
			if pl, ok := t["payload"].(map[string]any); ok {
				if s, ok := pl["tenant_id"].(string); ok {
					out[s] = true
				}
			}
			for _, e := range t {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}
