package qdrant

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol/qdrant/qdranttest"
)

// Tests in this file drive Warden in front of qdranttest, the in-memory
// stand-in for Qdrant v1.19.0 (see package qdranttest for which endpoints
// and semantics it mirrors). A real Qdrant cannot be installed here.

// TestTenantReads: every read a tenant-bound caller makes only ever sees
// its own tenant's points, whichever place the query pulls points from.
func TestTenantReads(t *testing.T) {
	h := newHarness(t, Options{})
	cases := []struct {
		name, path, body string
		want             []string // ids, order-insensitive; nil = only check tenants
	}{
		{"query vector", "/collections/kb/points/query", `{"query":[1,0,0],"limit":10,"with_payload":true}`, []string{"1", "2"}},
		{"query user filter narrows", "/collections/kb/points/query", `{"query":[1,0,0],"filter":{"must":{"key":"topic","match":{"value":"billing"}}},"with_payload":true}`, []string{"1"}},
		{"query should cannot widen", "/collections/kb/points/query", `{"query":[1,0,0],"filter":{"should":[{"key":"topic","match":{"value":"billing"}},{"has_id":[3]}]},"with_payload":true}`, []string{"1"}},
		{"query must_not cannot widen", "/collections/kb/points/query", `{"filter":{"must_not":[{"key":"topic","match":{"value":"support"}}]},"with_payload":true}`, []string{"1"}},
		{"query min_should", "/collections/kb/points/query", `{"filter":{"min_should":{"conditions":[{"has_id":[1,3]}],"min_count":1}},"with_payload":true}`, []string{"1"}},
		{"query range", "/collections/kb/points/query", `{"filter":{"must":[{"key":"rank","range":{"gte":0,"lte":10}}]},"with_payload":true}`, []string{"1", "2"}},
		{"query own tenant match allowed", "/collections/kb/points/query", `{"filter":{"must":[{"key":"tenant_id","match":{"value":"acme"}}]},"with_payload":true}`, []string{"1", "2"}},
		{"prefetch object", "/collections/kb/points/query", `{"prefetch":{"query":[1,0,0],"limit":10},"query":[1,0,0],"with_payload":true}`, []string{"1", "2"}},
		{"prefetch nested array", "/collections/kb/points/query", `{"prefetch":[{"prefetch":[{"query":[1,0,0],"limit":10}],"query":[1,0,0]}],"query":{"nearest":[1,0,0]},"with_payload":true}`, []string{"1", "2"}},
		{"query recommend by vectors", "/collections/kb/points/query", `{"query":{"recommend":{"positive":[[1,0,0]]}},"with_payload":true}`, []string{"1", "2"}},
		{"query batch", "/collections/kb/points/query/batch", `{"searches":[{"query":[1,0,0],"with_payload":true},{"query":[0,1,0],"with_payload":true}]}`, []string{"1", "2", "1", "2"}},
		{"legacy search", "/collections/kb/points/search", `{"vector":[1,0,0],"limit":10,"with_payload":true}`, []string{"1", "2"}},
		{"legacy search batch", "/collections/kb/points/search/batch", `{"searches":[{"vector":[1,0,0],"with_payload":true},{"vector":[0,1,0],"filter":{"must":[{"has_id":[2,3]}]},"with_payload":true}]}`, []string{"1", "2", "2"}},
		{"legacy recommend by vector", "/collections/kb/points/recommend", `{"positive":[[1,0,0]],"limit":10,"with_payload":true}`, []string{"1", "2"}},
		{"legacy recommend batch", "/collections/kb/points/recommend/batch", `{"searches":[{"positive":[[1,0,0]],"with_payload":true}]}`, []string{"1", "2"}},
		{"scroll", "/collections/kb/points/scroll", `{"limit":10}`, []string{"1", "2"}},
		{"scroll by has_id of other tenant", "/collections/kb/points/scroll", `{"filter":{"must":[{"has_id":[3,"5c56c793-69f3-4fbf-87e6-c4bf54c28c26"]}]}}`, []string{}},
		{"retrieve drops other tenant ids", "/collections/kb/points", `{"ids":[1,3,"5c56c793-69f3-4fbf-87e6-c4bf54c28c26"]}`, []string{"1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.do(peerAcme, "POST", c.path, c.body)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.raw)
			}
			got := ids(r.body["result"])
			if got == nil {
				got = []string{}
			}
			if c.want != nil {
				g, w := slices.Clone(got), slices.Clone(c.want)
				slices.Sort(g)
				slices.Sort(w)
				if !slices.Equal(g, w) {
					t.Fatalf("ids %v, want %v (%s)", got, c.want, r.raw)
				}
			}
			if ts := tenantsIn(r.body["result"]); ts["globex"] {
				t.Fatalf("globex data leaked: %s", r.raw)
			}
			a := h.lastAudit()
			if a["decision"] != "allow" || !slices.Contains(anyStrings(a["obligations_applied"]), "tenant_filter") && c.path != "/collections/kb/points" {
				t.Fatalf("audit: %v", a)
			}
			if a["tenant"] == nil {
				t.Fatalf("audit without tenant: %v", a)
			}
		})
	}
}

// TestTenantReadsUnbound: the same reads without a tenant obligation see
// both tenants, so the isolation tests above can fail.
func TestTenantReadsUnbound(t *testing.T) {
	h := newHarness(t, Options{})
	r := h.do(peerReader, "POST", "/collections/kb/points/query", `{"query":[1,0,0],"with_payload":true}`)
	if r.status != 200 || !tenantsIn(r.body["result"])["globex"] {
		t.Fatalf("unbound reader should see every tenant: %d %s", r.status, r.raw)
	}
}

func TestTenantCountAndFacet(t *testing.T) {
	h := newHarness(t, Options{})
	r := h.do(peerAcme, "POST", "/collections/kb/points/count", `{"exact":true}`)
	if r.status != 200 {
		t.Fatalf("count: %d %s", r.status, r.raw)
	}
	if n, _ := jsonstrict.Int(r.body["result"].(map[string]any)["count"]); n != 2 {
		t.Fatalf("count = %d, want 2 (own points only)", n)
	}
	r = h.do(peerAcme, "POST", "/collections/kb/facet", `{"key":"tenant_id"}`)
	if r.status != 200 || strings.Contains(r.raw, "globex") {
		t.Fatalf("facet leaked other tenant values: %d %s", r.status, r.raw)
	}
	r = h.do(peerReader, "POST", "/collections/kb/facet", `{"key":"tenant_id"}`)
	if !strings.Contains(r.raw, "globex") {
		t.Fatalf("unbound facet should list every tenant: %s", r.raw)
	}
}

func TestTenantGetByID(t *testing.T) {
	h := newHarness(t, Options{})
	r := h.do(peerAcme, "GET", "/collections/kb/points/1", "")
	if r.status != 200 || !strings.Contains(r.raw, `"acme"`) {
		t.Fatalf("own point: %d %s", r.status, r.raw)
	}
	for _, id := range []string{"3", "5c56c793-69f3-4fbf-87e6-c4bf54c28c26", "5C56C793-69F3-4FBF-87E6-C4BF54C28C26", "404"} {
		r = h.do(peerAcme, "GET", "/collections/kb/points/"+id, "")
		if r.status != 404 || strings.Contains(r.raw, "globex") {
			t.Fatalf("point %s of another tenant: %d %s", id, r.status, r.raw)
		}
		errorMessage(t, r)
	}
}

// TestRetrieveProjection: Warden forces with_payload to read the tenant
// key, then gives the client only what it asked for.
func TestRetrieveProjection(t *testing.T) {
	h := newHarness(t, Options{})
	r := h.do(peerAcme, "POST", "/collections/kb/points", `{"ids":[1,2],"with_payload":false}`)
	if r.status != 200 || strings.Contains(r.raw, "tenant_id") || len(ids(r.body["result"])) != 2 {
		t.Fatalf("with_payload false: %d %s", r.status, r.raw)
	}
	r = h.do(peerAcme, "POST", "/collections/kb/points", `{"ids":[1],"with_payload":["topic"]}`)
	if r.status != 200 || strings.Contains(r.raw, "tenant_id") || !strings.Contains(r.raw, "billing") {
		t.Fatalf("with_payload list: %d %s", r.status, r.raw)
	}
	if !slices.Contains(anyStrings(h.lastAudit()["obligations_applied"]), "with_payload_forced") {
		t.Fatalf("audit: %v", h.lastAudit())
	}
}

func anyStrings(v any) []string {
	var out []string
	arr, _ := v.([]any)
	for _, e := range arr {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

// TestTenantRefusals: reads that would escape or probe the tenant are
// refused in Qdrant's error format, and the upstream sees nothing.
func TestTenantRefusals(t *testing.T) {
	h := newHarness(t, Options{})
	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"filter matches other tenant", "POST", "/collections/kb/points/query", `{"filter":{"must":[{"key":"tenant_id","match":{"value":"globex"}}]}}`, 403, CodeTenantConflict},
		{"filter should other tenant", "POST", "/collections/kb/points/query", `{"filter":{"should":[{"key":"tenant_id","match":{"value":"globex"}}]}}`, 403, CodeTenantConflict},
		{"filter negates tenant", "POST", "/collections/kb/points/scroll", `{"filter":{"must_not":[{"key":"tenant_id","match":{"value":"acme"}}]}}`, 403, CodeTenantConflict},
		{"filter match any", "POST", "/collections/kb/points/count", `{"filter":{"must":[{"key":"tenant_id","match":{"any":["acme","globex"]}}]}}`, 403, CodeTenantConflict},
		{"filter except", "POST", "/collections/kb/points/count", `{"filter":{"must":{"key":"tenant_id","match":{"except":["acme"]}}}}`, 403, CodeTenantConflict},
		{"filter is_empty", "POST", "/collections/kb/points/count", `{"filter":{"must":[{"is_empty":{"key":"tenant_id"}}]}}`, 403, CodeTenantConflict},
		{"filter quoted key", "POST", "/collections/kb/points/count", `{"filter":{"must":[{"key":"\"tenant_id\"","match":{"value":"globex"}}]}}`, 403, CodeTenantConflict},
		{"filter min_should", "POST", "/collections/kb/points/count", `{"filter":{"min_should":{"conditions":[{"key":"tenant_id","match":{"value":"acme"}}],"min_count":1}}}`, 403, CodeTenantConflict},
		{"filter nested in prefetch", "POST", "/collections/kb/points/query", `{"prefetch":[{"filter":{"must":[{"must_not":{"key":"tenant_id","match":{"value":"acme"}}}]}}]}`, 403, CodeTenantConflict},
		{"filter in batch entry", "POST", "/collections/kb/points/search/batch", `{"searches":[{"vector":[1,0,0]},{"vector":[1,0,0],"filter":{"should":{"key":"tenant_id","match":{"value":"globex"}}}}]}`, 403, CodeTenantConflict},
		{"filter case variant key", "POST", "/collections/kb/points/query", `{"filter":{"Must":[{"key":"topic","match":{"value":"x"}}]}}`, 400, CodeAmbiguousJSON},
		{"query nearest by id", "POST", "/collections/kb/points/query", `{"query":3}`, 403, CodeIDReference},
		{"query nearest uuid", "POST", "/collections/kb/points/query", `{"query":{"nearest":"5c56c793-69f3-4fbf-87e6-c4bf54c28c26"}}`, 403, CodeIDReference},
		{"query recommend ids", "POST", "/collections/kb/points/query", `{"query":{"recommend":{"positive":[1],"negative":[3]}}}`, 403, CodeIDReference},
		{"prefetch query by id", "POST", "/collections/kb/points/query", `{"prefetch":{"query":3},"query":[1,0,0]}`, 403, CodeIDReference},
		{"query discover context ids", "POST", "/collections/kb/points/query", `{"query":{"discover":{"target":[1,0,0],"context":[{"positive":3,"negative":1}]}}}`, 403, CodeIDReference},
		{"legacy recommend ids", "POST", "/collections/kb/points/recommend", `{"positive":[3],"limit":3}`, 403, CodeIDReference},
		{"legacy recommend batch ids", "POST", "/collections/kb/points/recommend/batch", `{"searches":[{"positive":[[1,0,0]]},{"positive":[3]}]}`, 403, CodeIDReference},
		{"legacy discover target id", "POST", "/collections/kb/points/discover", `{"target":3,"context":[]}`, 403, CodeIDReference},
		{"legacy discover batch", "POST", "/collections/kb/points/discover/batch", `{"searches":[{"target":[1,0,0],"context":[{"positive":3,"negative":[0,1,0]}]}]}`, 403, CodeIDReference},
		{"lookup_from unauthorized collection", "POST", "/collections/kb/points/recommend", `{"positive":[[1,0,0]],"lookup_from":{"collection":"secret"}}`, 403, "policy_denied"},
		{"lookup_from in prefetch", "POST", "/collections/kb/points/query", `{"prefetch":{"query":[1,0,0],"lookup_from":{"collection":"secret"}}}`, 403, "policy_denied"},
		{"with_lookup", "POST", "/collections/kb/points/query/groups", `{"query":[1,0,0],"group_by":"topic","with_lookup":"docs-eng"}`, 403, CodeTenantUnsupported},
		{"with_lookup search groups", "POST", "/collections/kb/points/search/groups", `{"vector":[1,0,0],"group_by":"topic","with_lookup":{"collection":"secret"}}`, 403, "policy_denied"},
		{"collection info", "GET", "/collections/kb", "", 403, CodeTenantUnsupported},
		{"admin", "DELETE", "/collections/kb", "", 403, "policy_denied"},
		{"other collection", "POST", "/collections/secret/points/scroll", `{}`, 403, "policy_denied"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.up.ResetRequests()
			r := h.do(peerAcme, c.method, c.path, c.body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.raw)
			}
			errorMessage(t, r)
			if n := len(h.up.Requests()); n != 0 {
				t.Fatalf("upstream saw %d requests", n)
			}
			if c.code != "policy_denied" && c.code != CodeAmbiguousJSON {
				if a := h.lastAudit(); a["decision"] != "deny" || a["refusal"] != c.code {
					t.Fatalf("audit %v, want refusal %s", a, c.code)
				}
			}
		})
	}
}

// TestLookupAllowed: lookup_from a collection the caller may read is a
// second Call, decided on its own.
func TestLookupAllowed(t *testing.T) {
	h := newHarness(t, Options{})
	r := h.do(peerAcme, "POST", "/collections/kb/points/recommend", `{"positive":[[1,0,0]],"lookup_from":{"collection":"docs-eng"},"with_payload":true}`)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	h.mu.Lock()
	calls := h.calls
	h.mu.Unlock()
	if len(calls) != 2 || calls[1].Resource["collection"] != "docs-eng" || calls[1].Action != "read" {
		t.Fatalf("calls %+v", calls)
	}
	if got := h.lastAudit()["lookup_collections"]; got == nil {
		t.Fatalf("audit without lookup collections: %v", h.lastAudit())
	}
}

// TestResponseLeak: a point of another tenant in a response (an upstream
// that ignored the filter) withholds the response and raises an alert.
func TestResponseLeak(t *testing.T) {
	h := newHarness(t, Options{})
	liar := qdranttestLiar(t, `{"result":{"points":[{"id":1,"score":1,"payload":{"tenant_id":"acme"}},{"id":3,"score":0.9,"payload":{"tenant_id":"globex"}}]},"status":"ok","time":0}`)
	h.upURL = liar
	r := h.do(peerAcme, "POST", "/collections/kb/points/query", `{"query":[1,0,0],"with_payload":true}`)
	if r.status != http.StatusBadGateway || strings.Contains(r.raw, "globex") {
		t.Fatalf("leak not withheld: %d %s", r.status, r.raw)
	}
	a := h.lastAudit()
	if a["alert"] != alertTenantLeak || a["alert_points"] != 1 {
		t.Fatalf("audit without alert: %v", a)
	}
	// Grouped results are checked too, including the lookup record.
	h.upURL = qdranttestLiar(t, `{"result":{"groups":[{"id":"billing","hits":[{"id":1,"score":1,"payload":{"tenant_id":"acme"}}],"lookup":{"id":8,"payload":{"tenant_id":"globex"}}}]},"status":"ok","time":0}`)
	r = h.do(peerAcme, "POST", "/collections/kb/points/search/groups", `{"vector":[1,0,0],"group_by":"topic","with_payload":true}`)
	if r.status != http.StatusBadGateway {
		t.Fatalf("group leak not withheld: %d %s", r.status, r.raw)
	}
	// The same response is passed to an unbound reader unchanged.
	h.upURL = liar
	r = h.do(peerReader, "POST", "/collections/kb/points/query", `{"query":[1,0,0],"with_payload":true}`)
	if r.status != 200 || h.lastAudit()["alert"] != nil {
		t.Fatalf("unbound: %d %s %v", r.status, r.raw, h.lastAudit())
	}
}

func qdranttestLiar(t *testing.T, body string) string {
	t.Helper()
	srv := newStatic(body)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestCollectionsListFiltered(t *testing.T) {
	h := newHarness(t, Options{})
	h.up.Alias("kb-latest", "kb")
	h.up.Alias("top-secret", "secret")
	cases := []struct {
		peer string
		want []string
	}{
		{peerAcme, []string{"docs-eng", "kb"}},
		{peerGlobex, []string{"kb"}},
		{peerReader, []string{"docs-eng", "kb"}},
		{peerAdmin, []string{"docs-eng", "kb", "secret"}},
	}
	for _, c := range cases {
		for _, path := range []string{"/collections", "/collections/"} {
			r := h.do(c.peer, "GET", path, "")
			if r.status != 200 {
				t.Fatalf("%s: %d %s", c.peer, r.status, r.raw)
			}
			var got []string
			for _, e := range r.body["result"].(map[string]any)["collections"].([]any) {
				got = append(got, e.(map[string]any)["name"].(string))
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("%s %s: %v, want %v", c.peer, path, got, c.want)
			}
		}
		r := h.do(c.peer, "GET", "/aliases", "")
		if c.peer != peerAdmin && strings.Contains(r.raw, "top-secret") {
			t.Fatalf("%s: alias of a hidden collection listed: %s", c.peer, r.raw)
		}
		if !strings.Contains(r.raw, "kb-latest") {
			t.Fatalf("%s: alias of a visible collection missing: %s", c.peer, r.raw)
		}
	}
	h.do(peerAcme, "GET", "/collections", "")
	if h.lastAudit()["hidden"] != 1 {
		t.Fatalf("audit: %v", h.lastAudit())
	}
}

// TestWriteIsolation covers every write kind for a tenant-bound caller.
func TestWriteIsolation(t *testing.T) {
	payloadOf := func(h *harness, coll, id string) map[string]any {
		for _, p := range h.up.Points(coll) {
			b, _ := jsonstrict.Marshal(p.ID)
			if strings.Trim(string(b), `"`) == id {
				return p.Payload
			}
		}
		return nil
	}
	t.Run("upsert sets missing tenant", func(t *testing.T) {
		h := newHarness(t, Options{})
		r := h.do(peerAcme, "PUT", "/collections/kb/points?wait=true", `{"points":[{"id":10,"vector":[1,1,0],"payload":{"topic":"new"}},{"id":11,"vector":[1,1,0]}]}`)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		for _, id := range []string{"10", "11"} {
			if payloadOf(h, "kb", id)["tenant_id"] != "acme" {
				t.Fatalf("point %s: %v", id, payloadOf(h, "kb", id))
			}
		}
	})
	t.Run("upsert batch form", func(t *testing.T) {
		h := newHarness(t, Options{})
		r := h.do(peerAcme, "PUT", "/collections/kb/points", `{"batch":{"ids":[12,13],"vectors":[[1,0,0],[0,1,0]],"payloads":[{"topic":"a"},null]}}`)
		if r.status != 200 || payloadOf(h, "kb", "12")["tenant_id"] != "acme" || payloadOf(h, "kb", "13")["tenant_id"] != "acme" {
			t.Fatalf("%d %s %v", r.status, r.raw, h.up.Points("kb"))
		}
		r = h.do(peerAcme, "PUT", "/collections/kb/points", `{"batch":{"ids":[14],"vectors":[[1,0,0]]}}`)
		if r.status != 200 || payloadOf(h, "kb", "14")["tenant_id"] != "acme" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("upsert refuse mode", func(t *testing.T) {
		h := newHarness(t, Options{TenantMissing: TenantMissingRefuse})
		r := h.do(peerAcme, "PUT", "/collections/kb/points", `{"points":[{"id":10,"vector":[1,1,0],"payload":{"topic":"new"}}]}`)
		if r.status != 403 || len(h.up.Requests()) != 0 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		r = h.do(peerAcme, "PUT", "/collections/kb/points", `{"points":[{"id":10,"vector":[1,1,0],"payload":{"tenant_id":"acme"}}]}`)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("upsert cannot overwrite other tenant's id", func(t *testing.T) {
		h := newHarness(t, Options{})
		r := h.do(peerAcme, "PUT", "/collections/kb/points", `{"points":[{"id":3,"vector":[0,0,1],"payload":{"topic":"hijack"}}]}`)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		if pl := payloadOf(h, "kb", "3"); pl["tenant_id"] != "globex" || pl["topic"] != "billing" {
			t.Fatalf("other tenant's point changed: %v", pl)
		}
		if !slices.Contains(anyStrings(h.lastAudit()["obligations_applied"]), "update_filter") {
			t.Fatalf("audit: %v", h.lastAudit())
		}
	})
	refusals := []struct{ name, method, path, body string }{
		{"upsert other tenant value", "PUT", "/collections/kb/points", `{"points":[{"id":10,"vector":[1,1,0],"payload":{"tenant_id":"globex"}}]}`},
		{"upsert batch other tenant", "PUT", "/collections/kb/points", `{"batch":{"ids":[10],"vectors":[[1,1,0]],"payloads":[{"tenant_id":"globex"}]}}`},
		{"set payload changes tenant", "POST", "/collections/kb/points/payload", `{"payload":{"tenant_id":"globex"},"points":[1]}`},
		{"set payload nested key", "POST", "/collections/kb/points/payload", `{"payload":{"x":1},"key":"tenant_id","points":[1]}`},
		{"delete payload tenant key", "POST", "/collections/kb/points/payload/delete", `{"keys":["topic","tenant_id"],"points":[1]}`},
		{"clear payload", "POST", "/collections/kb/points/payload/clear", `{"points":[1]}`},
		{"overwrite other tenant", "PUT", "/collections/kb/points/payload", `{"payload":{"tenant_id":"globex"},"points":[1]}`},
		{"delete filter negates tenant", "POST", "/collections/kb/points/delete", `{"filter":{"must_not":[{"key":"tenant_id","match":{"value":"acme"}}]}}`},
		{"batch op changes tenant", "POST", "/collections/kb/points/batch", `{"operations":[{"upsert":{"points":[{"id":20,"vector":[1,0,0]}]}},{"set_payload":{"payload":{"tenant_id":"globex"},"points":[20]}}]}`},
		{"batch clear", "POST", "/collections/kb/points/batch", `{"operations":[{"clear_payload":{"points":[1]}}]}`},
		{"selector both", "POST", "/collections/kb/points/delete", `{"points":[1],"filter":{}}`},
	}
	for _, c := range refusals {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			r := h.do(peerAcme, c.method, c.path, c.body)
			if r.status < 400 || r.status > 499 {
				t.Fatalf("status %d: %s", r.status, r.raw)
			}
			errorMessage(t, r)
			if len(h.up.Requests()) != 0 {
				t.Fatal("upstream saw the refused write")
			}
		})
	}
	confined := []struct{ name, method, path, body string }{
		{"delete by ids", "POST", "/collections/kb/points/delete?wait=true", `{"points":[3,"5c56c793-69f3-4fbf-87e6-c4bf54c28c26"]}`},
		{"delete by filter", "POST", "/collections/kb/points/delete", `{"filter":{"must":[{"key":"topic","match":{"any":["billing","secret"]}}]}}`},
		{"set payload by ids", "POST", "/collections/kb/points/payload", `{"payload":{"topic":"owned"},"points":[3]}`},
		{"set payload by filter", "POST", "/collections/kb/points/payload", `{"payload":{"topic":"owned"},"filter":{"must":{"key":"topic","match":{"value":"billing"}}}}`},
		{"overwrite by ids", "PUT", "/collections/kb/points/payload", `{"payload":{"topic":"owned"},"points":[3]}`},
		{"delete payload by ids", "POST", "/collections/kb/points/payload/delete", `{"keys":["topic"],"points":[3]}`},
		{"update vectors", "PUT", "/collections/kb/points/vectors", `{"points":[{"id":3,"vector":[0,0,1]}]}`},
		{"delete vectors", "POST", "/collections/kb/points/vectors/delete", `{"points":[3],"vector":[""]}`},
		{"batch", "POST", "/collections/kb/points/batch", `{"operations":[{"delete":{"points":[3]}},{"overwrite_payload":{"payload":{"topic":"x"},"points":[3]}},{"update_vectors":{"points":[{"id":3,"vector":[0,0,1]}]}}]}`},
	}
	for _, c := range confined {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			before := h.up.Points("kb")
			r := h.do(peerAcme, c.method, c.path, c.body)
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			after := h.up.Points("kb")
			for _, p := range before {
				if p.Payload["tenant_id"] != "globex" {
					continue
				}
				found := false
				for _, q := range after {
					if idString(q.ID) == idString(p.ID) {
						found = true
						if !mapsEqual(p.Payload, q.Payload) || !slices.Equal(p.Vector, q.Vector) {
							t.Fatalf("globex point %v changed: %v → %v", p.ID, p, q)
						}
					}
				}
				if !found {
					t.Fatalf("globex point %v deleted", p.ID)
				}
			}
			for _, q := range after {
				if q.Payload["tenant_id"] == nil {
					t.Fatalf("point %v lost its tenant key", q.ID)
				}
			}
		})
	}
	t.Run("own points are written", func(t *testing.T) {
		h := newHarness(t, Options{})
		r := h.do(peerAcme, "POST", "/collections/kb/points/payload", `{"payload":{"topic":"owned"},"points":[1,3]}`)
		if r.status != 200 || payloadOf(h, "kb", "1")["topic"] != "owned" || payloadOf(h, "kb", "3")["topic"] != "billing" {
			t.Fatalf("%d %v", r.status, h.up.Points("kb"))
		}
		r = h.do(peerAcme, "PUT", "/collections/kb/points/payload", `{"payload":{"topic":"replaced"},"points":[2]}`)
		if pl := payloadOf(h, "kb", "2"); r.status != 200 || pl["tenant_id"] != "acme" || pl["topic"] != "replaced" || pl["rank"] != nil {
			t.Fatalf("overwrite: %d %v", r.status, pl)
		}
		r = h.do(peerAcme, "POST", "/collections/kb/points/delete", `{"points":[1,3]}`)
		if r.status != 200 || payloadOf(h, "kb", "1") != nil || payloadOf(h, "kb", "3") == nil {
			t.Fatalf("delete: %d %v", r.status, h.up.Points("kb"))
		}
	})
}

func idString(id any) string {
	b, _ := jsonstrict.Marshal(id)
	return strings.Trim(string(b), `"`)
}

func mapsEqual(a, b map[string]any) bool {
	x, _ := jsonstrict.Marshal(a)
	y, _ := jsonstrict.Marshal(b)
	return string(x) == string(y)
}

type qdranttestPoint = qdranttest.Point

// TestPayloadSelection: a read that selects payload keys still has every
// point checked (Warden adds the tenant key, then removes it).
func TestPayloadSelection(t *testing.T) {
	h := newHarness(t, Options{})
	for _, wp := range []string{`["topic"]`, `{"include":["topic"]}`, `{"exclude":["tenant_id","rank"]}`} {
		r := h.do(peerAcme, "POST", "/collections/kb/points/query", `{"query":[1,0,0],"with_payload":`+wp+`}`)
		if r.status != 200 || strings.Contains(r.raw, "tenant_id") || !strings.Contains(r.raw, "billing") || len(ids(r.body["result"])) != 2 {
			t.Fatalf("%s: %d %s", wp, r.status, r.raw)
		}
		up := h.up.Requests()
		if !strings.Contains(string(up[len(up)-1].Body), `"tenant_id"]`) && !strings.Contains(string(up[len(up)-1].Body), `"exclude":["rank"]`) {
			t.Fatalf("%s: tenant key not selected upstream: %s", wp, up[len(up)-1].Body)
		}
	}
	// A liar upstream returning another tenant's point under a selection
	// is still caught.
	h.upURL = qdranttestLiar(t, `{"result":{"points":[{"id":3,"score":1,"payload":{"topic":"billing","tenant_id":"globex"}}]},"status":"ok","time":0}`)
	r := h.do(peerAcme, "POST", "/collections/kb/points/query", `{"query":[1,0,0],"with_payload":["topic"]}`)
	if r.status != http.StatusBadGateway {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	r = h.do(peerAcme, "POST", "/collections/kb/points/query", `{"query":[1,0,0],"with_payload":{"only":["x"]}}`)
	if r.status != 400 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
}

// TestPayloadlessReads: a read without payload still has every point
// checked (Warden asks for the tenant key, then drops the payload), per
// search of a batch.
func TestPayloadlessReads(t *testing.T) {
	h := newHarness(t, Options{})
	r := h.do(peerAcme, "POST", "/collections/kb/points/query", `{"query":[1,0,0]}`)
	if r.status != 200 || strings.Contains(r.raw, "payload") || len(ids(r.body["result"])) != 2 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	r = h.do(peerAcme, "POST", "/collections/kb/points/search/batch", `{"searches":[{"vector":[1,0,0]},{"vector":[1,0,0],"with_payload":true}]}`)
	res, _ := r.body["result"].([]any)
	if r.status != 200 || len(res) != 2 || strings.Contains(string(mustJSON(res[0])), "payload") || !strings.Contains(string(mustJSON(res[1])), `"tenant_id":"acme"`) {
		t.Fatalf("batch: %d %s", r.status, r.raw)
	}
	r = h.do(peerAcme, "POST", "/collections/kb/points/scroll", `{"limit":1}`)
	if r.status != 200 || !strings.Contains(r.raw, `"tenant_id":"acme"`) {
		t.Fatalf("scroll defaults to payload: %d %s", r.status, r.raw)
	}
	h.upURL = qdranttestLiar(t, `{"result":[{"id":3,"score":1,"payload":{"tenant_id":"globex"}}],"status":"ok","time":0}`)
	r = h.do(peerAcme, "POST", "/collections/kb/points/search", `{"vector":[1,0,0]}`)
	if r.status != http.StatusBadGateway || h.lastAudit()["alert"] != alertTenantLeak {
		t.Fatalf("payloadless leak: %d %s", r.status, r.raw)
	}
	h.upURL = qdranttestLiar(t, `{"result":[{"id":3,"score":1}],"status":"ok","time":0}`)
	r = h.do(peerAcme, "POST", "/collections/kb/points/search", `{"vector":[1,0,0]}`)
	if r.status != http.StatusBadGateway {
		t.Fatalf("point without the requested tenant key passed: %d %s", r.status, r.raw)
	}
}

func mustJSON(v any) []byte {
	b, _ := jsonstrict.Marshal(v)
	return b
}
