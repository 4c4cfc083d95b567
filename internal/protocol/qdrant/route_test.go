package qdrant

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wardenhq/warden/internal/protocol"
)

func parse(t testing.TB, p *Protocol, method, target, body string) (protocol.Exchange, error) {
	t.Helper()
	r := httptest.NewRequest(method, "http://q"+target, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	return p.Parse(context.Background(), &protocol.Request{HTTP: r, Body: []byte(body), Backend: "q"})
}

// TestClassification pins the class of the endpoints the issue lists,
// including the legacy routes the OpenAPI no longer documents.
func TestClassification(t *testing.T) {
	p := New(Config{})
	cases := []struct{ method, path, action, op string }{
		{"POST", "/collections/kb/points/query", "read", "points.query"},
		{"POST", "/collections/kb/points/query/batch", "read", "points.query.batch"},
		{"POST", "/collections/kb/points/query/groups", "read", "points.query.groups"},
		{"POST", "/collections/kb/points/search", "read", "points.search"},
		{"POST", "/collections/kb/points/search/batch", "read", "points.search.batch"},
		{"POST", "/collections/kb/points/search/groups", "read", "points.search.groups"},
		{"POST", "/collections/kb/points/recommend", "read", "points.recommend"},
		{"POST", "/collections/kb/points/recommend/batch", "read", "points.recommend.batch"},
		{"POST", "/collections/kb/points/recommend/groups", "read", "points.recommend.groups"},
		{"POST", "/collections/kb/points/discover", "read", "points.discover"},
		{"POST", "/collections/kb/points/discover/batch", "read", "points.discover.batch"},
		{"POST", "/collections/kb/points/scroll", "read", "points.scroll"},
		{"POST", "/collections/kb/points/count", "read", "points.count"},
		{"POST", "/collections/kb/facet", "read", "points.facet"},
		{"POST", "/collections/kb/points/search/matrix/pairs", "read", "points.search.matrix.pairs"},
		{"POST", "/collections/kb/points", "read", "points.retrieve"},
		{"GET", "/collections/kb/points/42", "read", "points.get"},
		{"GET", "/collections", "read", "collections.list"},
		{"GET", "/collections/kb", "read", "collections.get"},
		{"GET", "/collections/kb/aliases", "read", "collections.aliases"},
		{"GET", "/aliases", "read", "aliases.list"},
		{"PUT", "/collections/kb/points", "write", "points.upsert"},
		{"POST", "/collections/kb/points/delete", "write", "points.delete"},
		{"POST", "/collections/kb/points/payload", "write", "points.payload.set"},
		{"PUT", "/collections/kb/points/payload", "write", "points.payload.overwrite"},
		{"POST", "/collections/kb/points/payload/delete", "write", "points.payload.delete"},
		{"POST", "/collections/kb/points/payload/clear", "write", "points.payload.clear"},
		{"PUT", "/collections/kb/points/vectors", "write", "points.vectors.update"},
		{"POST", "/collections/kb/points/vectors/delete", "write", "points.vectors.delete"},
		{"POST", "/collections/kb/points/batch", "write", "points.batch"},
		{"PUT", "/collections/kb", "admin", "collections.create"},
		{"PATCH", "/collections/kb", "admin", "collections.update"},
		{"DELETE", "/collections/kb", "admin", "collections.delete"},
		{"POST", "/collections/aliases", "admin", "aliases.update"},
		{"PUT", "/collections/kb/index", "admin", "index.create"},
		{"DELETE", "/collections/kb/index/tenant_id", "admin", "index.delete"},
		{"POST", "/collections/kb/snapshots", "admin", "snapshots.create"},
		{"PUT", "/collections/kb/snapshots/recover", "admin", "snapshots.recover"},
		{"GET", "/collections/kb/shards", "admin", "shards.list"},
		{"GET", "/cluster", "admin", "cluster.get"},
		{"DELETE", "/cluster/peer/7", "admin", "cluster.peer.delete"},
		{"GET", "/telemetry", "admin", "telemetry"},
		{"GET", "/metrics", "admin", "metrics"},
		{"POST", "/locks", "admin", "locks.set"},
	}
	for _, c := range cases {
		body := ""
		for _, r := range routes {
			if r.op == c.op && (r.body == 'j') {
				body = "{}"
			}
		}
		if strings.HasSuffix(c.op, ".batch") {
			body = `{"searches":[]}`
		}
		if c.op == "points.batch" {
			body = `{"operations":[]}`
		}
		if c.op == "points.upsert" {
			body = `{"points":[]}`
		}
		x, err := parse(t, p, c.method, c.path, body)
		if err != nil {
			t.Errorf("%s %s: %v", c.method, c.path, err)
			continue
		}
		call := x.Calls()[0]
		if call.Action != c.action || call.Operation != c.op {
			t.Errorf("%s %s: %s %s, want %s %s", c.method, c.path, call.Action, call.Operation, c.action, c.op)
		}
		if strings.HasPrefix(c.path, "/collections/kb") && call.Resource["collection"] != "kb" {
			t.Errorf("%s %s: resource %v", c.method, c.path, call.Resource)
		}
	}
}

// TestEveryRouteParses walks the whole table: every classified route
// resolves to itself.
func TestEveryRouteParses(t *testing.T) {
	for _, r := range routes {
		path := strings.NewReplacer("{c}", "kb", "{*}", "1").Replace(r.pattern)
		m, err := resolve(r.method, path)
		if err != nil || m.r.op != r.op {
			t.Errorf("%s %s: %v %v", r.method, path, m, err)
		}
	}
}

func TestUnclassifiedDenied(t *testing.T) {
	p := New(Config{})
	cases := []struct {
		method, path string
		status       int
	}{
		{"POST", "/collections/kb/points/unknown", 404},
		{"POST", "/collections/kb/points/unknown/x", 404},
		{"POST", "/collections/kb/points/query/extra/deep", 404},
		{"GET", "/Collections", 404},
		{"GET", "/collections/kb/POINTS/1", 404},
		{"POST", "/v1/chat/completions", 404},
		{"GET", "/collections/kb/points/query", 405},
		{"GET", "/collections/kb/points/-1", 404},
		{"GET", "/collections/kb/points/18446744073709551616", 404},
		{"POST", "/collections/kb/points/1", 405},
		{"DELETE", "/collections/kb/points", 405},
		{"PUT", "/collections/kb/points/search", 405},
		{"GET", "/collections/k%25b", 400},
		{"GET", "/collections/k+b", 400},
		{"GET", "/collections/k%C3%A9", 400},
	}
	for _, c := range cases {
		_, err := parse(t, p, c.method, c.path, "")
		if err == nil {
			t.Errorf("%s %s: accepted", c.method, c.path)
			continue
		}
		if got := protocol.AsError(err).Status; got != c.status {
			t.Errorf("%s %s: status %d, want %d", c.method, c.path, got, c.status)
		}
	}
}

// TestPathSpellings: every alternative spelling of a path reaches the
// same decision as the canonical one, and the stand-in (which normalizes
// like Qdrant's actix app) serves the same collection.
func TestPathSpellings(t *testing.T) {
	h := newHarness(t, Options{})
	groups := []struct {
		status    int // 0: unknown route, 404 or 405
		spellings []string
	}{
		{200, []string{
			"/collections/kb/points/scroll",
			"/collections/kb/points/scroll/",
			"/collections/k%62/points/scroll",
			"/collections/%6B%62/points/scroll/",
			"/collections/kb/points/%73croll",
			"/collections/kb/%70oints/scroll?timeout=5",
		}},
		{403, []string{
			"/collections/secret/points/scroll",
			"/collections/secret/points/scroll/",
			"/collections/s%65cret/points/scroll",
			"/collections/%73ecret/points/%73croll/",
			"/collections/KB/points/scroll",
			"/collections/Kb/points/scroll/",
		}},
		{0, []string{"/Collections/kb/points/scroll", "/collections/kb/points/Scroll", "/collections/kb/points/scroll/x"}},
		{400, []string{
			"//collections/kb/points/scroll",
			"/collections//kb/points/scroll",
			"/collections/kb//points/scroll",
			"/collections/kb/points/scroll//",
			"/collections/kb%2Fpoints/scroll",
			"/collections/k%2eb/points/scroll",
			"/collections/./kb/points/scroll",
			"/collections/kb/../secret/points/scroll",
			"/collections/k%25b/points/scroll",
			"/collections/kb/points/scroll?foo=1",
			"/collections/kb/points/scroll?timeout=1&timeout=2",
			"/collections/kb/points/scroll?timeout=abc",
		}},
	}
	for _, g := range groups {
		for _, p := range g.spellings {
			h.up.ResetRequests()
			r := h.do(peerAcme, "POST", p, `{"limit":10}`)
			if r.status != g.status && !(g.status == 0 && r.status >= 404 && r.status <= 405) {
				t.Errorf("%s: status %d, want %d (%s)", p, r.status, g.status, r.raw)
				continue
			}
			reqs := h.up.Requests()
			if g.status != 200 {
				errorMessage(t, r)
				if len(reqs) != 0 {
					t.Errorf("%s: upstream saw a refused request", p)
				}
				continue
			}
			if len(reqs) != 1 {
				t.Fatalf("%s: upstream saw %d requests", p, len(reqs))
			}
			got := ids(r.body["result"])
			if strings.Join(got, ",") != "1,2" {
				t.Errorf("%s: ids %v", p, got)
			}
			if !strings.Contains(string(reqs[0].Body), "tenant_id") {
				t.Errorf("%s: tenant filter not injected", p)
			}
		}
	}
}

// TestAliases: with configured aliases policy decides on the collection a
// request reaches, not on the name written in the path.
func TestAliases(t *testing.T) {
	for _, configured := range []bool{false, true} {
		opt := Options{}
		if configured {
			opt.Aliases = map[string]string{"docs-secret": "secret", "kb-latest": "kb"}
		}
		h := newHarness(t, opt)
		h.up.Alias("docs-secret", "secret")
		h.up.Alias("kb-latest", "kb")
		r := h.do(peerAcme, "POST", "/collections/docs-secret/points/scroll", `{}`)
		if configured && r.status != 403 {
			t.Fatalf("alias to a forbidden collection: %d %s", r.status, r.raw)
		}
		if !configured && r.status != 200 {
			// Without the alias map the name as written decides (the
			// documented limit this option closes).
			t.Fatalf("unconfigured alias: %d %s", r.status, r.raw)
		}
		if configured {
			r = h.do(peerAcme, "POST", "/collections/kb-latest/points/scroll", `{}`)
			if r.status != 200 || strings.Join(ids(r.body["result"]), ",") != "1,2" {
				t.Fatalf("alias to an allowed collection: %d %s", r.status, r.raw)
			}
			if a := h.lastAudit(); a["collection"] != "kb" || a["alias"] != "kb-latest" {
				t.Fatalf("audit %v", a)
			}
		}
	}
}

// TestWriteSpellings: write and by-id paths take the same decision in
// every spelling.
func TestWriteSpellings(t *testing.T) {
	h := newHarness(t, Options{})
	for _, p := range []string{"/collections/kb/points", "/collections/kb/points/", "/collections/k%62/points?wait=true"} {
		r := h.do(peerAcme, "PUT", p, `{"points":[{"id":30,"vector":[1,0,0]}]}`)
		if r.status != 200 || !strings.Contains(string(h.up.Requests()[len(h.up.Requests())-1].Body), `"tenant_id":"acme"`) {
			t.Fatalf("%s: %d %s", p, r.status, r.raw)
		}
	}
	for _, p := range []string{"/collections/kb/points/3", "/collections/kb/points/3/", "/collections/%6bb/points/3"} {
		if r := h.do(peerAcme, "GET", p, ""); r.status != 404 {
			t.Fatalf("%s: %d %s", p, r.status, r.raw)
		}
	}
	for _, p := range []string{"/collections/secret/points", "/collections/secret/points/", "/collections/s%65cret/points"} {
		h.up.ResetRequests()
		if r := h.do(peerAcme, "PUT", p, `{"points":[]}`); r.status != 403 || len(h.up.Requests()) != 0 {
			t.Fatalf("%s: %d %s", p, r.status, r.raw)
		}
	}
}
