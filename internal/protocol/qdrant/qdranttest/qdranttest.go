// Package qdranttest is a stand-in for a Qdrant server, for tests only: a
// real HTTP server on 127.0.0.1 speaking the Qdrant REST API shapes of
// v1.19.0 (docs/redoc/master/openapi.json) for the endpoints Warden
// classifies, with points held in memory.
//
// It is not Qdrant. It implements with real semantics only what Warden's
// tenant isolation relies on: filters (must / should / must_not /
// min_should; match value / any / except; range; is_empty; is_null;
// has_id; nested filters as conditions), upsert with update_filter, delete
// and payload / vector updates by ids or filter, /points/batch, retrieve
// and GET by id, search (legacy route), recommend (legacy, by vectors or
// ids), query (vector, id, nearest, recommend, recursive prefetch),
// query/batch, search/batch, search / recommend / query groups (with_lookup),
// scroll, count, facet, collection list, info, exists and aliases. Scores
// are cosine similarities. Like Qdrant's actix app (NormalizePath::trim()),
// it merges "//" and trims a trailing "/" before routing, so path spelling
// tests see what the real server would.
// Every request is recorded, so tests can assert the upstream saw nothing.
package qdranttest

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/wardenhq/warden/internal/jsonstrict"
)

// Point is one stored point.
type Point struct {
	// ID is a jsonstrict.Number (unsigned integer) or a UUID string.
	ID      any
	Vector  []float64
	Payload map[string]any
}

// Request is one request the server received.
type Request struct {
	Method, Path, Query string
	Body                []byte
}

type collection struct {
	dim    int
	points map[string]*Point // by idKey
	order  []string
}

// Server is the stand-in. Its methods are safe for concurrent use.
type Server struct {
	// URL is http://127.0.0.1:port.
	URL string
	srv *httptest.Server

	mu      sync.Mutex
	colls   map[string]*collection
	aliases map[string]string
	reqs    []Request
}

// Start starts a server on 127.0.0.1. Close it when done.
func Start() *Server {
	s := &Server{colls: map[string]*collection{}, aliases: map[string]string{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Handler serves the stand-in's API, for mounting behind another listener
// (the quickstart serves it with mTLS).
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

// CreateCollection adds an empty collection of dim-dimensional vectors.
func (s *Server) CreateCollection(name string, dim int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.colls[name] = &collection{dim: dim, points: map[string]*Point{}}
}

// Alias points alias at collection.
func (s *Server) Alias(alias, coll string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.aliases[alias] = coll
}

// Put stores points in coll (created on demand), replacing same ids.
func (s *Server) Put(coll string, pts ...Point) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.colls[coll]
	if c == nil {
		c = &collection{points: map[string]*Point{}}
		s.colls[coll] = c
	}
	for i := range pts {
		p := pts[i]
		c.put(&p)
	}
}

// Points returns a copy of coll's points in insertion order.
func (s *Server) Points(coll string) []Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.colls[coll]
	if c == nil {
		return nil
	}
	out := make([]Point, 0, len(c.order))
	for _, k := range c.order {
		p := c.points[k]
		pl := map[string]any{}
		for k, v := range p.Payload {
			pl[k] = v
		}
		out = append(out, Point{ID: p.ID, Vector: append([]float64(nil), p.Vector...), Payload: pl})
	}
	return out
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// ResetRequests forgets the recorded requests.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = nil
}

func (c *collection) put(p *Point) {
	k := idKey(p.ID)
	if _, ok := c.points[k]; !ok {
		c.order = append(c.order, k)
	}
	if p.Payload == nil {
		p.Payload = map[string]any{}
	}
	c.points[k] = p
}

func (c *collection) del(k string) {
	if _, ok := c.points[k]; !ok {
		return
	}
	delete(c.points, k)
	for i, o := range c.order {
		if o == k {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
}

func (c *collection) all() []*Point {
	out := make([]*Point, 0, len(c.order))
	for _, k := range c.order {
		out = append(out, c.points[k])
	}
	return out
}

// idKey normalizes an ExtendedPointId the way Qdrant compares them:
// integers by value, UUIDs case-insensitively without hyphens or urn.
func idKey(id any) string {
	switch v := id.(type) {
	case jsonstrict.Number:
		if n, err := strconv.ParseUint(string(v), 10, 64); err == nil {
			return "n" + strconv.FormatUint(n, 10)
		}
	case string:
		u := strings.ToLower(strings.TrimPrefix(strings.ToLower(v), "urn:uuid:"))
		u = strings.Trim(strings.ReplaceAll(u, "-", ""), "{}")
		if len(u) == 32 {
			return "u" + u
		}
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			return "n" + strconv.FormatUint(n, 10)
		}
	case int:
		return "n" + strconv.Itoa(v)
	}
	return "?" + fmt.Sprint(id)
}

type apiError struct {
	status int
	msg    string
}

func fail(status int, format string, args ...any) *apiError {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// normalize is actix-web's NormalizePath::trim(): merge "//", trim "/".
func normalize(p string) string {
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	return p
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.reqs = append(s.reqs, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: body})
	s.mu.Unlock()
	var req map[string]any
	if len(body) > 0 {
		v, err := jsonstrict.Parse(body, jsonstrict.Options{})
		m, ok := v.(map[string]any)
		if err != nil || !ok {
			writeErr(w, fail(http.StatusBadRequest, "Format error in JSON body: %v", err))
			return
		}
		req = m
	}
	segs := strings.Split(strings.TrimPrefix(normalize(r.URL.Path), "/"), "/")
	s.mu.Lock()
	res, aerr := s.route(r.Method, segs, req)
	s.mu.Unlock()
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	b, _ := jsonstrict.Marshal(map[string]any{"result": res, "status": "ok", "time": jsonstrict.Number("0.000012")})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func writeErr(w http.ResponseWriter, e *apiError) {
	b, _ := jsonstrict.Marshal(map[string]any{"status": map[string]any{"error": e.msg}, "time": 0})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	_, _ = w.Write(b)
}

func (s *Server) coll(name string) (*collection, *apiError) {
	if real, ok := s.aliases[name]; ok {
		name = real
	}
	c := s.colls[name]
	if c == nil {
		return nil, fail(http.StatusNotFound, "Not found: Collection `%s` doesn't exist!", name)
	}
	return c, nil
}

func (s *Server) route(method string, segs []string, req map[string]any) (any, *apiError) {
	path := strings.Join(segs, "/")
	switch {
	case method == "GET" && path == "":
		return map[string]any{"title": "qdrant - vector search engine", "version": "1.19.0"}, nil
	case method == "GET" && path == "collections":
		names := make([]string, 0, len(s.colls))
		for n := range s.colls {
			names = append(names, n)
		}
		sort.Strings(names)
		list := []any{}
		for _, n := range names {
			list = append(list, map[string]any{"name": n})
		}
		return map[string]any{"collections": list}, nil
	case method == "GET" && path == "aliases":
		list := []any{}
		for a, c := range s.aliases {
			list = append(list, map[string]any{"alias_name": a, "collection_name": c})
		}
		return map[string]any{"aliases": list}, nil
	}
	if len(segs) < 2 || segs[0] != "collections" {
		return nil, fail(http.StatusNotFound, "Not found")
	}
	name, rest := segs[1], strings.Join(segs[2:], "/")
	if rest == "" {
		switch method {
		case "PUT":
			dim := 0
			if v, ok := req["vectors"].(map[string]any); ok {
				n, _ := jsonstrict.Int(v["size"])
				dim = int(n)
			}
			s.colls[name] = &collection{dim: dim, points: map[string]*Point{}}
			return true, nil
		case "DELETE":
			delete(s.colls, name)
			return true, nil
		case "GET":
			c, e := s.coll(name)
			if e != nil {
				return nil, e
			}
			return map[string]any{"status": "green", "points_count": len(c.points),
				"config": map[string]any{"params": map[string]any{"vectors": map[string]any{"size": c.dim, "distance": "Cosine"}}}}, nil
		}
		return nil, fail(http.StatusMethodNotAllowed, "method not allowed")
	}
	if rest == "exists" && method == "GET" {
		_, ok := s.colls[name]
		return map[string]any{"exists": ok}, nil
	}
	c, e := s.coll(name)
	if e != nil {
		return nil, e
	}
	switch method + " " + rest {
	case "GET collections/aliases", "GET aliases":
		list := []any{}
		for a, cn := range s.aliases {
			if cn == name {
				list = append(list, map[string]any{"alias_name": a, "collection_name": cn})
			}
		}
		return map[string]any{"aliases": list}, nil
	case "PUT points":
		return s.upsert(c, req)
	case "POST points":
		return s.retrieve(c, req)
	case "POST points/delete":
		return s.write(c, "delete", req)
	case "POST points/payload":
		return s.write(c, "set_payload", req)
	case "PUT points/payload":
		return s.write(c, "overwrite_payload", req)
	case "POST points/payload/delete":
		return s.write(c, "delete_payload", req)
	case "POST points/payload/clear":
		return s.write(c, "clear_payload", req)
	case "PUT points/vectors":
		return s.write(c, "update_vectors", req)
	case "POST points/vectors/delete":
		return s.write(c, "delete_vectors", req)
	case "POST points/batch":
		ops, _ := req["operations"].([]any)
		for _, o := range ops {
			om, _ := o.(map[string]any)
			for k, v := range om {
				vm, _ := v.(map[string]any)
				var e *apiError
				if k == "upsert" {
					_, e = s.upsert(c, vm)
				} else {
					_, e = s.write(c, k, vm)
				}
				if e != nil {
					return nil, e
				}
			}
		}
		return []any{map[string]any{"operation_id": 0, "status": "completed"}}, nil
	case "POST points/search":
		return s.search(c, req)
	case "POST points/search/batch", "POST points/recommend/batch", "POST points/query/batch":
		out := []any{}
		for _, q := range asList(req["searches"]) {
			qm, _ := q.(map[string]any)
			var r any
			var e *apiError
			switch {
			case strings.HasPrefix(rest, "points/search"):
				r, e = s.search(c, qm)
			case strings.HasPrefix(rest, "points/recommend"):
				r, e = s.recommend(c, qm)
			default:
				var pts []any
				pts, e = s.query(c, qm, 0)
				r = map[string]any{"points": pts}
			}
			if e != nil {
				return nil, e
			}
			out = append(out, r)
		}
		return out, nil
	case "POST points/recommend":
		return s.recommend(c, req)
	case "POST points/search/groups", "POST points/recommend/groups", "POST points/query/groups":
		return s.groups(c, rest, req)
	case "POST points/query":
		pts, e := s.query(c, req, 0)
		if e != nil {
			return nil, e
		}
		return map[string]any{"points": pts}, nil
	case "POST points/scroll":
		return s.scroll(c, req)
	case "POST points/count":
		f, _ := req["filter"].(map[string]any)
		n := 0
		for _, p := range c.all() {
			if match(f, p) {
				n++
			}
		}
		return map[string]any{"count": n}, nil
	case "POST facet":
		key, _ := req["key"].(string)
		f, _ := req["filter"].(map[string]any)
		counts := map[string]int{}
		vals := map[string]any{}
		for _, p := range c.all() {
			if !match(f, p) {
				continue
			}
			if v, ok := lookup(p.Payload, key); ok {
				k := fmt.Sprint(v)
				counts[k]++
				vals[k] = v
			}
		}
		keys := make([]string, 0, len(counts))
		for k := range counts {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		hits := []any{}
		for _, k := range keys {
			hits = append(hits, map[string]any{"value": vals[k], "count": counts[k]})
		}
		return map[string]any{"hits": hits}, nil
	}
	if method == "GET" && strings.HasPrefix(rest, "points/") {
		id := strings.TrimPrefix(rest, "points/")
		var key string
		if _, err := strconv.ParseUint(id, 10, 64); err == nil {
			key = idKey(jsonstrict.Number(id))
		} else {
			key = idKey(id)
		}
		p := c.points[key]
		if p == nil {
			return nil, fail(http.StatusNotFound, "Not found: No point with id %s found", id)
		}
		return record(p, true, false), nil
	}
	return nil, fail(http.StatusNotFound, "Not found")
}

func asList(v any) []any {
	switch t := v.(type) {
	case []any:
		return t
	case nil:
		return nil
	}
	return []any{v}
}

func record(p *Point, withPayload any, withVector any) map[string]any {
	m := map[string]any{"id": p.ID}
	m["payload"] = payloadView(p.Payload, withPayload)
	if withVector == true {
		vec := make([]any, len(p.Vector))
		for i, f := range p.Vector {
			vec[i] = f
		}
		m["vector"] = vec
	} else {
		m["vector"] = nil
	}
	return m
}

func payloadView(pl map[string]any, with any) any {
	switch w := with.(type) {
	case bool:
		if !w {
			return nil
		}
		return pl
	case []any:
		out := map[string]any{}
		for _, k := range w {
			if s, ok := k.(string); ok {
				if v, ok := pl[s]; ok {
					out[s] = v
				}
			}
		}
		return out
	case map[string]any:
		inc, _ := w["include"].([]any)
		exc, _ := w["exclude"].([]any)
		out := map[string]any{}
		for k, v := range pl {
			in := inc == nil
			for _, x := range inc {
				if x == k {
					in = true
				}
			}
			for _, x := range exc {
				if x == k {
					in = false
				}
			}
			if in {
				out[k] = v
			}
		}
		return out
	}
	return nil
}

func (s *Server) upsert(c *collection, req map[string]any) (any, *apiError) {
	uf, _ := req["update_filter"].(map[string]any)
	var pts []*Point
	if list, ok := req["points"].([]any); ok {
		for _, e := range list {
			m, _ := e.(map[string]any)
			p, err := toPoint(m["id"], m["vector"], m["payload"])
			if err != nil {
				return nil, err
			}
			pts = append(pts, p)
		}
	} else if b, ok := req["batch"].(map[string]any); ok {
		ids, _ := b["ids"].([]any)
		vecs, _ := b["vectors"].([]any)
		pls, _ := b["payloads"].([]any)
		for i, id := range ids {
			var v, pl any
			if i < len(vecs) {
				v = vecs[i]
			}
			if i < len(pls) {
				pl = pls[i]
			}
			p, err := toPoint(id, v, pl)
			if err != nil {
				return nil, err
			}
			pts = append(pts, p)
		}
	} else {
		return nil, fail(http.StatusBadRequest, "Format error in JSON body: data did not match any variant of untagged enum PointInsertOperations")
	}
	for _, p := range pts {
		if old, ok := c.points[idKey(p.ID)]; ok && uf != nil && !match(uf, old) {
			continue // update_filter: points that don't match keep their state
		}
		c.put(p)
	}
	return map[string]any{"operation_id": 0, "status": "completed"}, nil
}

func toPoint(id, vec, payload any) (*Point, *apiError) {
	if idKey(id)[0] == '?' {
		return nil, fail(http.StatusBadRequest, "Format error in JSON body: invalid point id")
	}
	v, ok := vector(vec)
	if !ok {
		return nil, fail(http.StatusBadRequest, "Format error in JSON body: invalid vector")
	}
	pl, _ := payload.(map[string]any)
	if pl == nil && payload != nil {
		return nil, fail(http.StatusBadRequest, "Format error in JSON body: invalid payload")
	}
	return &Point{ID: id, Vector: v, Payload: pl}, nil
}

func vector(v any) ([]float64, bool) {
	arr, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]float64, len(arr))
	for i, e := range arr {
		f, ok := jsonstrict.Float(e)
		if !ok {
			return nil, false
		}
		out[i] = f
	}
	return out, true
}

// selected returns the points a PointsSelector (points or filter) picks.
func selected(c *collection, req map[string]any) []*Point {
	var out []*Point
	if ids, ok := req["points"].([]any); ok {
		for _, id := range ids {
			if p := c.points[idKey(id)]; p != nil {
				out = append(out, p)
			}
		}
		return out
	}
	f, ok := req["filter"].(map[string]any)
	if !ok {
		return nil
	}
	for _, p := range c.all() {
		if match(f, p) {
			out = append(out, p)
		}
	}
	return out
}

func (s *Server) write(c *collection, op string, req map[string]any) (any, *apiError) {
	done := map[string]any{"operation_id": 0, "status": "completed"}
	switch op {
	case "delete":
		for _, p := range selected(c, req) {
			c.del(idKey(p.ID))
		}
	case "set_payload", "overwrite_payload":
		pl, _ := req["payload"].(map[string]any)
		for _, p := range selected(c, req) {
			if op == "overwrite_payload" {
				p.Payload = map[string]any{}
			}
			for k, v := range pl {
				p.Payload[k] = v
			}
		}
	case "delete_payload":
		keys, _ := req["keys"].([]any)
		for _, p := range selected(c, req) {
			for _, k := range keys {
				if s, ok := k.(string); ok {
					delete(p.Payload, s)
				}
			}
		}
	case "clear_payload":
		for _, p := range selected(c, req) {
			p.Payload = map[string]any{}
		}
	case "update_vectors":
		uf, _ := req["update_filter"].(map[string]any)
		pts, _ := req["points"].([]any)
		for _, e := range pts {
			m, _ := e.(map[string]any)
			p := c.points[idKey(m["id"])]
			if p == nil {
				return nil, fail(http.StatusNotFound, "Not found: No point with id %v found", m["id"])
			}
			if uf != nil && !match(uf, p) {
				continue
			}
			if v, ok := vector(m["vector"]); ok {
				p.Vector = v
			}
		}
	case "delete_vectors":
		for _, p := range selected(c, req) {
			p.Vector = nil
		}
	default:
		return nil, fail(http.StatusBadRequest, "unknown operation")
	}
	return done, nil
}

func (s *Server) retrieve(c *collection, req map[string]any) (any, *apiError) {
	ids, _ := req["ids"].([]any)
	wp, ok := req["with_payload"]
	if !ok {
		wp = true
	}
	out := []any{}
	for _, id := range ids {
		if p := c.points[idKey(id)]; p != nil {
			out = append(out, record(p, wp, req["with_vector"]))
		}
	}
	return out, nil
}

type scored struct {
	p     *Point
	score float64
}

func cosine(a, b []float64) float64 {
	if len(a) != len(b) || len(a) == 0 {
		return 0
	}
	var d, na, nb float64
	for i := range a {
		d += a[i] * b[i]
		na += a[i] * a[i]
		nb += b[i] * b[i]
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return d / math.Sqrt(na*nb)
}

func limitOf(req map[string]any, def int) int {
	if n, ok := jsonstrict.Int(req["limit"]); ok && n > 0 {
		return int(n)
	}
	if n, ok := jsonstrict.Int(req["top"]); ok && n > 0 {
		return int(n)
	}
	return def
}

func rank(cands []*Point, score func(*Point) float64, f map[string]any, limit int) []scored {
	var out []scored
	for _, p := range cands {
		if match(f, p) {
			out = append(out, scored{p, score(p)})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].score > out[j].score })
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

func (s *Server) scoredJSON(list []scored, req map[string]any) []any {
	wp, ok := req["with_payload"]
	if !ok {
		wp = false
	}
	out := []any{}
	for _, sp := range list {
		m := record(sp.p, wp, req["with_vector"])
		m["score"] = sp.score
		m["version"] = 0
		out = append(out, m)
	}
	return out
}

func (s *Server) search(c *collection, req map[string]any) (any, *apiError) {
	list, e := s.searchPoints(c, req)
	if e != nil {
		return nil, e
	}
	return s.scoredJSON(list, req), nil
}

func (s *Server) searchPoints(c *collection, req map[string]any) ([]scored, *apiError) {
	vec, ok := vector(req["vector"])
	if !ok {
		if nv, isNamed := req["vector"].(map[string]any); isNamed {
			vec, ok = vector(nv["vector"])
		}
	}
	if !ok {
		return nil, fail(http.StatusBadRequest, "Format error in JSON body: missing field `vector`")
	}
	f, _ := req["filter"].(map[string]any)
	return rank(c.all(), func(p *Point) float64 { return cosine(vec, p.Vector) }, f, limitOf(req, 10)), nil
}

func example(c *collection, v any) ([]float64, *apiError) {
	if vec, ok := vector(v); ok {
		return vec, nil
	}
	p := c.points[idKey(v)]
	if p == nil {
		return nil, fail(http.StatusNotFound, "Not found: No point with id %v found", v)
	}
	return p.Vector, nil
}

func (s *Server) recommend(c *collection, req map[string]any) (any, *apiError) {
	list, e := s.recommendPoints(c, req)
	if e != nil {
		return nil, e
	}
	return s.scoredJSON(list, req), nil
}

func (s *Server) recommendPoints(c *collection, req map[string]any) ([]scored, *apiError) {
	score, excl, e := recommendScore(c, req)
	if e != nil {
		return nil, e
	}
	f, _ := req["filter"].(map[string]any)
	var cands []*Point
	for _, p := range c.all() {
		if !excl[idKey(p.ID)] {
			cands = append(cands, p)
		}
	}
	return rank(cands, score, f, limitOf(req, 10)), nil
}

// groups is the grouping API (search, recommend and query groups): the
// candidates ranked as the plain endpoint ranks them, grouped by the
// top-level payload value of group_by (strings and integers only), groups
// ordered by their best hit, at most group_size hits (default 3) in each and
// limit groups (default 10). with_lookup (a collection name, or
// {collection, with_payload (default true), with_vectors}) attaches the
// point of that collection whose id is the group id, when there is one.
func (s *Server) groups(c *collection, rest string, req map[string]any) (any, *apiError) {
	key, _ := req["group_by"].(string)
	if key == "" {
		return nil, fail(http.StatusBadRequest, "Format error in JSON body: missing field `group_by`")
	}
	all := make(map[string]any, len(req)+1)
	for k, v := range req {
		all[k] = v
	}
	all["limit"] = jsonstrict.Number("1000000")
	var list []scored
	var e *apiError
	switch {
	case strings.HasPrefix(rest, "points/search"):
		list, e = s.searchPoints(c, all)
	case strings.HasPrefix(rest, "points/recommend"):
		list, e = s.recommendPoints(c, all)
	default:
		list, e = s.queryPoints(c, all, 0)
	}
	if e != nil {
		return nil, e
	}
	size := limitOf(map[string]any{"limit": req["group_size"]}, 3)
	limit := limitOf(req, 10)
	type group struct {
		id   any
		hits []scored
	}
	var order []*group
	byKey := map[string]*group{}
	for _, sp := range list {
		v, ok := sp.p.Payload[key]
		switch v.(type) {
		case string, jsonstrict.Number:
		default:
			ok = false
		}
		if !ok {
			continue
		}
		k := fmt.Sprintf("%T:%v", v, v)
		g := byKey[k]
		if g == nil {
			if len(order) == limit {
				continue
			}
			g = &group{id: v}
			byKey[k] = g
			order = append(order, g)
		}
		if len(g.hits) < size {
			g.hits = append(g.hits, sp)
		}
	}
	var lc *collection
	lookupPayload, lookupVector := any(true), any(false)
	switch w := req["with_lookup"].(type) {
	case string:
		lc = s.colls[w]
	case map[string]any:
		name, _ := w["collection"].(string)
		lc = s.colls[name]
		if v, ok := w["with_payload"]; ok {
			lookupPayload = v
		}
		if v, ok := w["with_vectors"]; ok {
			lookupVector = v
		}
	}
	out := []any{}
	for _, g := range order {
		gm := map[string]any{"id": g.id, "hits": s.scoredJSON(g.hits, req)}
		if lc != nil {
			if p := lc.points[idKey(g.id)]; p != nil {
				gm["lookup"] = record(p, lookupPayload, lookupVector)
			}
		}
		out = append(out, gm)
	}
	return map[string]any{"groups": out}, nil
}

// recommendScore is the average_vector strategy: similarity to the mean of
// positives minus the mean of negatives. Example ids are excluded.
func recommendScore(c *collection, req map[string]any) (func(*Point) float64, map[string]bool, *apiError) {
	excl := map[string]bool{}
	var pos, neg [][]float64
	for _, v := range asList(req["positive"]) {
		vec, e := example(c, v)
		if e != nil {
			return nil, nil, e
		}
		if _, isVec := v.([]any); !isVec {
			excl[idKey(v)] = true
		}
		pos = append(pos, vec)
	}
	for _, v := range asList(req["negative"]) {
		vec, e := example(c, v)
		if e != nil {
			return nil, nil, e
		}
		if _, isVec := v.([]any); !isVec {
			excl[idKey(v)] = true
		}
		neg = append(neg, vec)
	}
	if len(pos) == 0 {
		return nil, nil, fail(http.StatusBadRequest, "Bad request: positive examples are required")
	}
	mean := func(vs [][]float64) []float64 {
		if len(vs) == 0 {
			return nil
		}
		out := make([]float64, len(vs[0]))
		for _, v := range vs {
			for i := range out {
				if i < len(v) {
					out[i] += v[i] / float64(len(vs))
				}
			}
		}
		return out
	}
	mp, mn := mean(pos), mean(neg)
	target := mp
	if mn != nil {
		target = make([]float64, len(mp))
		for i := range mp {
			target[i] = mp[i] + mp[i] - mn[i]
		}
	}
	return func(p *Point) float64 { return cosine(target, p.Vector) }, excl, nil
}

// query is the universal Query API: candidates come from the prefetches
// (or the whole collection), are filtered, then ranked by the query.
func (s *Server) query(c *collection, req map[string]any, depth int) ([]any, *apiError) {
	pts, e := s.queryPoints(c, req, depth)
	if e != nil {
		return nil, e
	}
	return s.scoredJSON(pts, req), nil
}

func (s *Server) queryPoints(c *collection, req map[string]any, depth int) ([]scored, *apiError) {
	if depth > 8 {
		return nil, fail(http.StatusBadRequest, "prefetch too deep")
	}
	cands := c.all()
	if pf, ok := req["prefetch"]; ok && pf != nil {
		seen := map[string]bool{}
		cands = nil
		for _, sub := range asList(pf) {
			sm, _ := sub.(map[string]any)
			res, e := s.queryPoints(c, sm, depth+1)
			if e != nil {
				return nil, e
			}
			for _, sp := range res {
				if k := idKey(sp.p.ID); !seen[k] {
					seen[k] = true
					cands = append(cands, sp.p)
				}
			}
		}
	}
	f, _ := req["filter"].(map[string]any)
	score := func(*Point) float64 { return 0 }
	excl := map[string]bool{}
	switch q := req["query"].(type) {
	case nil:
	case map[string]any:
		switch {
		case q["nearest"] != nil:
			vec, e := example(c, q["nearest"])
			if e != nil {
				return nil, e
			}
			score = func(p *Point) float64 { return cosine(vec, p.Vector) }
		case q["recommend"] != nil:
			rm, _ := q["recommend"].(map[string]any)
			sc, ex, e := recommendScore(c, rm)
			if e != nil {
				return nil, e
			}
			score, excl = sc, ex
		default:
			return nil, fail(http.StatusBadRequest, "Format error in JSON body: unsupported query in the stand-in")
		}
	default:
		vec, e := example(c, q)
		if e != nil {
			return nil, e
		}
		if _, isVec := q.([]any); !isVec {
			excl[idKey(q)] = true
		}
		score = func(p *Point) float64 { return cosine(vec, p.Vector) }
	}
	var kept []*Point
	for _, p := range cands {
		if !excl[idKey(p.ID)] {
			kept = append(kept, p)
		}
	}
	return rank(kept, score, f, limitOf(req, 10)), nil
}

func (s *Server) scroll(c *collection, req map[string]any) (any, *apiError) {
	f, _ := req["filter"].(map[string]any)
	limit := limitOf(req, 10)
	wp, ok := req["with_payload"]
	if !ok {
		wp = true
	}
	start := ""
	if off, ok := req["offset"]; ok && off != nil {
		start = idKey(off)
	}
	keys := append([]string(nil), c.order...)
	sort.Strings(keys)
	out := []any{}
	var next any
	for _, k := range keys {
		if start != "" && k < start {
			continue
		}
		p := c.points[k]
		if !match(f, p) {
			continue
		}
		if len(out) == limit {
			next = p.ID
			break
		}
		out = append(out, record(p, wp, req["with_vector"]))
	}
	return map[string]any{"points": out, "next_page_offset": next}, nil
}

// --- filters ---

func match(f map[string]any, p *Point) bool {
	if f == nil {
		return true
	}
	for k, v := range f {
		conds := asList(v)
		switch k {
		case "must":
			for _, c := range conds {
				if !cond(c, p) {
					return false
				}
			}
		case "must_not":
			for _, c := range conds {
				if cond(c, p) {
					return false
				}
			}
		case "should":
			if len(conds) == 0 {
				continue
			}
			any := false
			for _, c := range conds {
				if cond(c, p) {
					any = true
				}
			}
			if !any {
				return false
			}
		case "min_should":
			m, _ := v.(map[string]any)
			min, _ := jsonstrict.Int(m["min_count"])
			n := int64(0)
			for _, c := range asList(m["conditions"]) {
				if cond(c, p) {
					n++
				}
			}
			if n < min {
				return false
			}
		}
	}
	return true
}

func cond(c any, p *Point) bool {
	m, ok := c.(map[string]any)
	if !ok {
		return false
	}
	if ids, ok := m["has_id"].([]any); ok {
		for _, id := range ids {
			if idKey(id) == idKey(p.ID) {
				return true
			}
		}
		return false
	}
	if ie, ok := m["is_empty"].(map[string]any); ok {
		k, _ := ie["key"].(string)
		v, ok := lookup(p.Payload, k)
		if !ok || v == nil {
			return true
		}
		arr, isArr := v.([]any)
		return isArr && len(arr) == 0
	}
	if in, ok := m["is_null"].(map[string]any); ok {
		k, _ := in["key"].(string)
		v, ok := lookup(p.Payload, k)
		return ok && v == nil
	}
	key, hasKey := m["key"].(string)
	if !hasKey {
		return match(m, p) // a Filter used as a condition
	}
	v, ok := lookup(p.Payload, key)
	if mt, ok2 := m["match"].(map[string]any); ok2 {
		if !ok {
			return false
		}
		vals := asList(v)
		anyOf, isAny := mt["any"].([]any)
		if want, ok := mt["value"]; ok {
			anyOf, isAny = []any{want}, true // value is any of one
		}
		if isAny {
			for _, x := range vals {
				for _, w := range anyOf {
					if same(x, w) {
						return true
					}
				}
			}
			return false
		}
		if exc, ok := mt["except"].([]any); ok {
			for _, x := range vals {
				for _, w := range exc {
					if same(x, w) {
						return false
					}
				}
			}
			return true
		}
		if txt, ok := mt["text"].(string); ok {
			s, _ := v.(string)
			return strings.Contains(s, txt)
		}
		return false
	}
	if rg, ok2 := m["range"].(map[string]any); ok2 {
		f, isNum := jsonstrict.Float(v)
		if !ok || !isNum {
			return false
		}
		for op, bound := range rg {
			b, ok := jsonstrict.Float(bound)
			if !ok {
				continue
			}
			switch op {
			case "gt":
				if !(f > b) {
					return false
				}
			case "gte":
				if !(f >= b) {
					return false
				}
			case "lt":
				if !(f < b) {
					return false
				}
			case "lte":
				if !(f <= b) {
					return false
				}
			}
		}
		return true
	}
	return false
}

func same(a, b any) bool {
	if fa, ok := jsonstrict.Float(a); ok {
		fb, ok := jsonstrict.Float(b)
		return ok && fa == fb
	}
	return a == b
}

// lookup reads a dotted payload path.
func lookup(pl map[string]any, key string) (any, bool) {
	var cur any = pl
	for _, part := range strings.Split(key, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		cur, ok = m[part]
		if !ok {
			return nil, false
		}
	}
	return cur, true
}
