package qdranttest

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/wardenhq/warden/internal/jsonstrict"
)

func post(t *testing.T, s *Server, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	v, err := jsonstrict.Parse(raw, jsonstrict.Options{})
	if err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return resp.StatusCode, v.(map[string]any)
}

func count(t *testing.T, s *Server, filter string) int64 {
	t.Helper()
	st, body := post(t, s, "POST", "/collections/c/points/count", `{"filter":`+filter+`}`)
	if st != 200 {
		t.Fatalf("count %s: %d %v", filter, st, body)
	}
	n, _ := jsonstrict.Int(body["result"].(map[string]any)["count"])
	return n
}

// TestFilters pins the filter semantics Warden's isolation tests rely on.
func TestFilters(t *testing.T) {
	s := Start()
	defer s.Close()
	n := func(v string) jsonstrict.Number { return jsonstrict.Number(v) }
	s.Put("c",
		Point{ID: n("1"), Vector: []float64{1, 0}, Payload: map[string]any{"t": "a", "r": n("1"), "tags": []any{"x", "y"}}},
		Point{ID: n("2"), Vector: []float64{0, 1}, Payload: map[string]any{"t": "a", "r": n("5")}},
		Point{ID: n("3"), Vector: []float64{1, 1}, Payload: map[string]any{"t": "b", "r": n("9"), "n": nil}},
	)
	cases := []struct {
		filter string
		want   int64
	}{
		{`{}`, 3},
		{`{"must":{"key":"t","match":{"value":"a"}}}`, 2},
		{`{"must":[{"key":"t","match":{"value":"a"}},{"key":"r","range":{"gt":2}}]}`, 1},
		{`{"should":[{"key":"t","match":{"value":"b"}},{"has_id":[1]}]}`, 2},
		{`{"must_not":[{"key":"t","match":{"value":"a"}}]}`, 1},
		{`{"min_should":{"conditions":[{"has_id":[1,2]},{"key":"t","match":{"value":"a"}}],"min_count":2}}`, 2},
		{`{"must":[{"key":"t","match":{"any":["a","b"]}}]}`, 3},
		{`{"must":[{"key":"t","match":{"except":["a"]}}]}`, 1},
		{`{"must":[{"key":"tags","match":{"value":"y"}}]}`, 1},
		{`{"must":[{"is_empty":{"key":"tags"}}]}`, 2},
		{`{"must":[{"is_null":{"key":"n"}}]}`, 1},
		{`{"must":[{"must":[{"key":"t","match":{"value":"a"}}]},{"must_not":{"has_id":[2]}}]}`, 1},
		{`{"must":[{"key":"r","range":{"gte":1,"lte":5}}]}`, 2},
	}
	for _, c := range cases {
		if got := count(t, s, c.filter); got != c.want {
			t.Errorf("%s: %d, want %d", c.filter, got, c.want)
		}
	}
}

// TestNormalizeAndUpdateFilter: paths normalize like actix
// NormalizePath::trim(), and update_filter keeps non-matching points.
func TestNormalizeAndUpdateFilter(t *testing.T) {
	s := Start()
	defer s.Close()
	s.Put("c", Point{ID: jsonstrict.Number("1"), Vector: []float64{1}, Payload: map[string]any{"t": "a"}})
	for _, p := range []string{"/collections/c/points/count", "/collections/c/points/count/", "//collections//c/points/count"} {
		if st, _ := post(t, s, "POST", p, `{}`); st != 200 {
			t.Errorf("%s: %d", p, st)
		}
	}
	st, _ := post(t, s, "PUT", "/collections/c/points", `{"points":[{"id":1,"vector":[2],"payload":{"t":"z"}},{"id":2,"vector":[3]}],"update_filter":{"must":{"key":"t","match":{"value":"b"}}}}`)
	if st != 200 {
		t.Fatal(st)
	}
	pts := s.Points("c")
	if len(pts) != 2 || pts[0].Payload["t"] != "a" {
		t.Fatalf("points %+v", pts)
	}
	if st, body := post(t, s, "GET", "/collections/c/points/9", ""); st != 404 || body["status"].(map[string]any)["error"] == nil {
		t.Fatalf("missing point: %d %v", st, body)
	}
}

// TestGroups pins the grouping shape: groups by the group_by value, ordered
// by best hit, group_size hits each, limit groups, with_lookup by group id.
func TestGroups(t *testing.T) {
	s := Start()
	defer s.Close()
	n := func(v string) jsonstrict.Number { return jsonstrict.Number(v) }
	s.Put("c",
		Point{ID: n("1"), Vector: []float64{1, 0}, Payload: map[string]any{"doc": "a"}},
		Point{ID: n("2"), Vector: []float64{0.9, 0.1}, Payload: map[string]any{"doc": "a"}},
		Point{ID: n("3"), Vector: []float64{0.8, 0.2}, Payload: map[string]any{"doc": "b"}},
		Point{ID: n("4"), Vector: []float64{0, 1}, Payload: map[string]any{"doc": "c"}},
		Point{ID: n("5"), Vector: []float64{1, 0}},
	)
	s.Put("docs", Point{ID: "a", Vector: []float64{0}, Payload: map[string]any{"title": "A"}})
	for _, path := range []string{"search/groups", "query/groups"} {
		q := `"vector":[1,0]`
		if path == "query/groups" {
			q = `"query":[1,0]`
		}
		st, body := post(t, s, "POST", "/collections/c/points/"+path, `{`+q+`,"group_by":"doc","group_size":1,"limit":2,"with_payload":true,"with_lookup":"docs"}`)
		if st != 200 {
			t.Fatalf("%s: %d %v", path, st, body)
		}
		gs := body["result"].(map[string]any)["groups"].([]any)
		if len(gs) != 2 {
			t.Fatalf("%s: %d groups, want 2: %v", path, len(gs), gs)
		}
		g0 := gs[0].(map[string]any)
		hits := g0["hits"].([]any)
		if g0["id"] != "a" || len(hits) != 1 || hits[0].(map[string]any)["id"] != n("1") {
			t.Fatalf("%s: first group %v", path, g0)
		}
		if lk, _ := g0["lookup"].(map[string]any); lk == nil || lk["payload"].(map[string]any)["title"] != "A" {
			t.Fatalf("%s: lookup %v", path, g0["lookup"])
		}
		if g1 := gs[1].(map[string]any); g1["id"] != "b" || g1["lookup"] != nil {
			t.Fatalf("%s: second group %v", path, g1)
		}
	}
}
