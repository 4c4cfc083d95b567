package qdrant

import (
	"strings"
	"testing"
)

// TestBadInput: malformed, ambiguous or oversized requests get a 4xx in
// Qdrant's error format and never reach the upstream, whoever sends them.
func TestBadInput(t *testing.T) {
	h := newHarness(t, Options{MaxBatch: 3})
	long := `{"ids":[1,2,3,4]}`
	cases := []struct {
		name, method, path, ctype, body string
		status                          int
	}{
		{"unknown route", "POST", "/collections/kb/points/explode", "application/json", `{}`, 404},
		{"unknown top route", "GET", "/dashboard", "", "", 404},
		{"duplicate key", "POST", "/collections/kb/points/query", "application/json", `{"filter":{},"filter":{"must":[]}}`, 400},
		{"case variant keys", "POST", "/collections/kb/points/query", "application/json", `{"filter":{},"Filter":{}}`, 400},
		{"case variant known key", "POST", "/collections/kb/points/scroll", "application/json", `{"Filter":{"must":[]}}`, 400},
		{"NUL suffixed key", "POST", "/collections/kb/points/scroll", "application/json", `{"filter\u0000x":{}}`, 400},
		{"invalid utf8 escape", "POST", "/collections/kb/points/scroll", "application/json", `{"filter":{"must":{"key":"\ud800","match":{"value":1}}}}`, 400},
		{"trailing data", "POST", "/collections/kb/points/scroll", "application/json", `{}{}`, 400},
		{"not an object", "POST", "/collections/kb/points/scroll", "application/json", `[1]`, 400},
		{"empty body", "POST", "/collections/kb/points/scroll", "application/json", ``, 400},
		{"wrong media type", "POST", "/collections/kb/points/scroll", "text/plain", `{}`, 415},
		{"filter not object", "POST", "/collections/kb/points/scroll", "application/json", `{"filter":[1]}`, 400},
		{"prefetch not object", "POST", "/collections/kb/points/query", "application/json", `{"prefetch":3}`, 400},
		{"body on GET", "GET", "/collections/kb/points/1", "application/json", `{}`, 400},
		{"retrieve too many ids", "POST", "/collections/kb/points", "application/json", long, 413},
		{"upsert too many points", "PUT", "/collections/kb/points", "application/json", `{"points":[{"id":1,"vector":[1]},{"id":2,"vector":[1]},{"id":3,"vector":[1]},{"id":4,"vector":[1]}]}`, 413},
		{"upsert batch too many", "PUT", "/collections/kb/points", "application/json", `{"batch":{"ids":[1,2,3,4],"vectors":[[1],[1],[1],[1]]}}`, 413},
		{"delete too many", "POST", "/collections/kb/points/delete", "application/json", `{"points":[1,2,3,4]}`, 413},
		{"search batch too large", "POST", "/collections/kb/points/search/batch", "application/json", `{"searches":[{},{},{},{}]}`, 413},
		{"batch ops too many", "POST", "/collections/kb/points/batch", "application/json", `{"operations":[{"delete":{"points":[1]}},{"delete":{"points":[1]}},{"delete":{"points":[1]}},{"delete":{"points":[1]}}]}`, 413},
		{"unknown batch op", "POST", "/collections/kb/points/batch", "application/json", `{"operations":[{"drop_collection":{}}]}`, 400},
		{"batch op two keys", "POST", "/collections/kb/points/batch", "application/json", `{"operations":[{"delete":{"points":[1]},"upsert":{"points":[]}}]}`, 400},
		{"upsert without points", "PUT", "/collections/kb/points", "application/json", `{"wait":true}`, 400},
		{"lookup name invalid", "POST", "/collections/kb/points/recommend", "application/json", `{"positive":[[1,0,0]],"lookup_from":{"collection":"a/b"}}`, 400},
		{"prefetch too deep", "POST", "/collections/kb/points/query", "application/json", `{"prefetch":{"prefetch":{"prefetch":{"prefetch":{"prefetch":{"prefetch":{"prefetch":{"prefetch":{"prefetch":{"prefetch":{}}}}}}}}}}}`, 400},
		{"unknown query parameter", "PUT", "/collections/kb/points?wait=true&debug=1", "application/json", `{"points":[]}`, 400},
		{"bad wait value", "PUT", "/collections/kb/points?wait=yes", "application/json", `{"points":[]}`, 400},
	}
	for _, c := range cases {
		for _, peer := range []string{peerAcme, peerAdmin} {
			t.Run(c.name+"/"+peer[strings.LastIndex(peer, "/")+1:], func(t *testing.T) {
				h.up.ResetRequests()
				r := h.doType(peer, c.method, c.path, c.ctype, c.body)
				if r.status != c.status {
					t.Fatalf("status %d, want %d: %s", r.status, c.status, r.raw)
				}
				errorMessage(t, r)
				if n := len(h.up.Requests()); n != 0 {
					t.Fatalf("upstream saw %d requests", n)
				}
			})
		}
	}
}

// TestObligations: only obligations Warden can apply are accepted.
func TestObligations(t *testing.T) {
	cases := []struct {
		name   string
		opt    Options
		obl    map[string]any
		status int
	}{
		{"object form", Options{}, tenantObl("acme"), 200},
		{"bare value with tenant_field", Options{TenantField: "tenant_id"}, map[string]any{"tenant": "acme"}, 200},
		{"bare value without tenant_field", Options{}, map[string]any{"tenant": "acme"}, 403},
		{"integer tenant", Options{TenantField: "org"}, map[string]any{"tenant": 7}, 200},
		{"nested field refused", Options{}, map[string]any{"tenant": map[string]any{"field": "meta.tenant", "value": "acme"}}, 403},
		{"unknown tenant key", Options{}, map[string]any{"tenant": map[string]any{"field": "tenant_id", "value": "acme", "mode": "x"}}, 403},
		{"empty value", Options{}, map[string]any{"tenant": map[string]any{"field": "tenant_id", "value": ""}}, 403},
		{"limits passes", Options{}, map[string]any{"limits": map[string]any{"rpm": 5}}, 200},
		{"unknown obligation", Options{}, map[string]any{"redact": true}, 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, c.opt)
			h.rules = []rule{{peer: peerAcme, actions: []string{"read"}, collections: []string{"kb"}, obligations: c.obl}}
			r := h.do(peerAcme, "POST", "/collections/kb/points/scroll", `{}`)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.raw)
			}
			if c.status != 200 && len(h.up.Requests()) != 0 {
				t.Fatal("upstream saw a refused request")
			}
		})
	}
}

// TestLookupTenantConflict: a lookup collection bound to another tenant
// than the request's refuses the request.
func TestLookupTenantConflict(t *testing.T) {
	h := newHarness(t, Options{})
	h.rules = []rule{
		{peer: peerAcme, actions: []string{"read"}, collections: []string{"kb"}, obligations: tenantObl("acme")},
		{peer: peerAcme, actions: []string{"read"}, collections: []string{"docs-eng"}, obligations: tenantObl("other")},
	}
	r := h.do(peerAcme, "POST", "/collections/kb/points/recommend", `{"positive":[[1,0,0]],"lookup_from":{"collection":"docs-eng"}}`)
	if r.status != 403 || len(h.up.Requests()) != 0 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
}

// TestAdmin: admin endpoints reach the upstream for an admin identity and
// are refused for everyone else, including a tenant-bound admin.
func TestAdmin(t *testing.T) {
	h := newHarness(t, Options{})
	r := h.do(peerAdmin, "PUT", "/collections/fresh", `{"vectors":{"size":3,"distance":"Cosine"}}`)
	if r.status != 200 {
		t.Fatalf("admin create: %d %s", r.status, r.raw)
	}
	if a := h.lastAudit(); a["action"] != "admin" || a["operation"] != "collections.create" || a["collection"] != "fresh" {
		t.Fatalf("audit %v", a)
	}
	for _, peer := range []string{peerAcme, peerReader} {
		h.up.ResetRequests()
		r = h.do(peer, "DELETE", "/collections/kb", "")
		if r.status != 403 || len(h.up.Requests()) != 0 {
			t.Fatalf("%s delete: %d %s", peer, r.status, r.raw)
		}
	}
	h.rules = []rule{{peer: peerAcme, actions: []string{"*"}, collections: []string{"*"}, obligations: tenantObl("acme")}}
	h.up.ResetRequests()
	r = h.do(peerAcme, "PUT", "/collections/kb/index", `{"field_name":"tenant_id","field_schema":"keyword"}`)
	if r.status != 403 || len(h.up.Requests()) != 0 {
		t.Fatalf("tenant-bound admin: %d %s", r.status, r.raw)
	}
}
