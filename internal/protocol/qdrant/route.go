package qdrant

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/wardenhq/warden/internal/protocol"
)

// class is how a route's body is handled.
type class uint8

const (
	classSearch   class = iota // point reads that take a filter
	classRetrieve              // point reads by id (no filter parameter)
	classMeta                  // metadata reads without a body
	classList                  // GET /collections, GET /aliases: filtered lists
	classWrite                 // point writes
	classAdmin                 // collection, index, snapshot, cluster, service administration
)

// route is one classified endpoint. pattern segments are literals, "{c}"
// (a collection name) or "{*}" (one opaque segment: point id, field,
// snapshot or vector name).
type route struct {
	method  string
	pattern string
	op      string
	action  string
	class   class
	// body: 'j' a JSON object is required, '-' no body, 'o' optional JSON,
	// 'r' raw (snapshot uploads), passed through unparsed.
	body byte
	segs []string
}

// routes mirrors Qdrant v1.19.0's actix routes (src/actix/api/*.rs and
// docs/redoc/master/openapi.json), including the legacy search, recommend
// and discover routes the OpenAPI no longer lists but the server still
// serves. Order does not matter: patterns with a literal where another has
// "{c}" or "{*}" are tried first (the same precedence actix gives routes
// registered before the catch-alls).
var routes = compile([]route{
	// Point reads with a filter.
	{method: "POST", pattern: "/collections/{c}/points/query", op: "points.query", class: classSearch, body: 'j'},
	{method: "POST", pattern: "/collections/{c}/points/query/batch", op: "points.query.batch", class: classSearch, body: 'j'},
	{method: "POST", pattern: "/collections/{c}/points/query/groups", op: "points.query.groups", class: classSearch, body: 'j'},
	{method: "POST", pattern: "/collections/{c}/points/search", op: "points.search", class: classSearch, body: 'j'},
	{method: "POST", pattern: "/collections/{c}/points/search/batch", op: "points.search.batch", class: classSearch, body: 'j'},
	{method: "POST", pattern: "/collections/{c}/points/search/groups", op: "points.search.groups", class: classSearch, body: 'j'},
	{method: "POST", pattern: "/collections/{c}/points/search/matrix/pairs", op: "points.search.matrix.pairs", class: classSearch, body: 'j'},
	{method: "POST", pattern: "/collections/{c}/points/search/matrix/offsets", op: "points.search.matrix.offsets", class: classSearch, body: 'j'},
	{method: "POST", pattern: "/collections/{c}/points/recommend", op: "points.recommend", class: classSearch, body: 'j'},
	{method: "POST", pattern: "/collections/{c}/points/recommend/batch", op: "points.recommend.batch", class: classSearch, body: 'j'},
	{method: "POST", pattern: "/collections/{c}/points/recommend/groups", op: "points.recommend.groups", class: classSearch, body: 'j'},
	{method: "POST", pattern: "/collections/{c}/points/discover", op: "points.discover", class: classSearch, body: 'j'},
	{method: "POST", pattern: "/collections/{c}/points/discover/batch", op: "points.discover.batch", class: classSearch, body: 'j'},
	{method: "POST", pattern: "/collections/{c}/points/scroll", op: "points.scroll", class: classSearch, body: 'j'},
	{method: "POST", pattern: "/collections/{c}/points/count", op: "points.count", class: classSearch, body: 'j'},
	{method: "POST", pattern: "/collections/{c}/facet", op: "points.facet", class: classSearch, body: 'j'},
	// Point reads by id.
	{method: "POST", pattern: "/collections/{c}/points", op: "points.retrieve", class: classRetrieve, body: 'j'},
	{method: "GET", pattern: "/collections/{c}/points/{*}", op: "points.get", class: classRetrieve, body: '-'},
	// Metadata reads.
	{method: "GET", pattern: "/collections", op: "collections.list", class: classList, body: '-'},
	{method: "GET", pattern: "/aliases", op: "aliases.list", class: classList, body: '-'},
	{method: "GET", pattern: "/collections/{c}", op: "collections.get", class: classMeta, body: '-'},
	{method: "GET", pattern: "/collections/{c}/exists", op: "collections.exists", class: classMeta, body: '-'},
	{method: "GET", pattern: "/collections/{c}/aliases", op: "collections.aliases", class: classMeta, body: '-'},
	{method: "GET", pattern: "/collections/{c}/optimizations", op: "collections.optimizations", class: classMeta, body: '-'},
	{method: "GET", pattern: "/", op: "service.info", class: classMeta, body: '-'},
	// Point writes.
	{method: "PUT", pattern: "/collections/{c}/points", op: "points.upsert", class: classWrite, body: 'j'},
	{method: "POST", pattern: "/collections/{c}/points/delete", op: "points.delete", class: classWrite, body: 'j'},
	{method: "PUT", pattern: "/collections/{c}/points/vectors", op: "points.vectors.update", class: classWrite, body: 'j'},
	{method: "POST", pattern: "/collections/{c}/points/vectors/delete", op: "points.vectors.delete", class: classWrite, body: 'j'},
	{method: "POST", pattern: "/collections/{c}/points/payload", op: "points.payload.set", class: classWrite, body: 'j'},
	{method: "PUT", pattern: "/collections/{c}/points/payload", op: "points.payload.overwrite", class: classWrite, body: 'j'},
	{method: "POST", pattern: "/collections/{c}/points/payload/delete", op: "points.payload.delete", class: classWrite, body: 'j'},
	{method: "POST", pattern: "/collections/{c}/points/payload/clear", op: "points.payload.clear", class: classWrite, body: 'j'},
	{method: "POST", pattern: "/collections/{c}/points/batch", op: "points.batch", class: classWrite, body: 'j'},
	// Administration.
	{method: "PUT", pattern: "/collections/{c}", op: "collections.create", class: classAdmin, body: 'o'},
	{method: "PATCH", pattern: "/collections/{c}", op: "collections.update", class: classAdmin, body: 'o'},
	{method: "DELETE", pattern: "/collections/{c}", op: "collections.delete", class: classAdmin, body: '-'},
	{method: "POST", pattern: "/collections/aliases", op: "aliases.update", class: classAdmin, body: 'j'},
	{method: "PUT", pattern: "/collections/{c}/index", op: "index.create", class: classAdmin, body: 'j'},
	{method: "DELETE", pattern: "/collections/{c}/index/{*}", op: "index.delete", class: classAdmin, body: '-'},
	{method: "PUT", pattern: "/collections/{c}/vectors/{*}", op: "vectors.create", class: classAdmin, body: 'j'},
	{method: "DELETE", pattern: "/collections/{c}/vectors/{*}", op: "vectors.delete", class: classAdmin, body: '-'},
	{method: "GET", pattern: "/collections/{c}/snapshots", op: "snapshots.list", class: classAdmin, body: '-'},
	{method: "POST", pattern: "/collections/{c}/snapshots", op: "snapshots.create", class: classAdmin, body: '-'},
	{method: "PUT", pattern: "/collections/{c}/snapshots/recover", op: "snapshots.recover", class: classAdmin, body: 'j'},
	{method: "POST", pattern: "/collections/{c}/snapshots/upload", op: "snapshots.upload", class: classAdmin, body: 'r'},
	{method: "GET", pattern: "/collections/{c}/snapshots/{*}", op: "snapshots.get", class: classAdmin, body: '-'},
	{method: "DELETE", pattern: "/collections/{c}/snapshots/{*}", op: "snapshots.delete", class: classAdmin, body: '-'},
	{method: "GET", pattern: "/collections/{c}/shards", op: "shards.list", class: classAdmin, body: '-'},
	{method: "PUT", pattern: "/collections/{c}/shards", op: "shards.create", class: classAdmin, body: 'j'},
	{method: "POST", pattern: "/collections/{c}/shards/delete", op: "shards.delete", class: classAdmin, body: 'j'},
	{method: "GET", pattern: "/collections/{c}/shards/{*}/snapshots", op: "shards.snapshots.list", class: classAdmin, body: '-'},
	{method: "POST", pattern: "/collections/{c}/shards/{*}/snapshots", op: "shards.snapshots.create", class: classAdmin, body: '-'},
	{method: "PUT", pattern: "/collections/{c}/shards/{*}/snapshots/recover", op: "shards.snapshots.recover", class: classAdmin, body: 'j'},
	{method: "POST", pattern: "/collections/{c}/shards/{*}/snapshots/upload", op: "shards.snapshots.upload", class: classAdmin, body: 'r'},
	{method: "GET", pattern: "/collections/{c}/shards/{*}/snapshots/{*}", op: "shards.snapshots.get", class: classAdmin, body: '-'},
	{method: "DELETE", pattern: "/collections/{c}/shards/{*}/snapshots/{*}", op: "shards.snapshots.delete", class: classAdmin, body: '-'},
	{method: "GET", pattern: "/collections/{c}/shards/{*}/snapshot", op: "shards.snapshot.stream", class: classAdmin, body: '-'},
	{method: "GET", pattern: "/collections/{c}/cluster", op: "collections.cluster.get", class: classAdmin, body: '-'},
	{method: "POST", pattern: "/collections/{c}/cluster", op: "collections.cluster.update", class: classAdmin, body: 'j'},
	{method: "GET", pattern: "/snapshots", op: "full_snapshots.list", class: classAdmin, body: '-'},
	{method: "POST", pattern: "/snapshots", op: "full_snapshots.create", class: classAdmin, body: '-'},
	{method: "GET", pattern: "/snapshots/{*}", op: "full_snapshots.get", class: classAdmin, body: '-'},
	{method: "DELETE", pattern: "/snapshots/{*}", op: "full_snapshots.delete", class: classAdmin, body: '-'},
	{method: "GET", pattern: "/cluster", op: "cluster.get", class: classAdmin, body: '-'},
	{method: "POST", pattern: "/cluster/recover", op: "cluster.recover", class: classAdmin, body: '-'},
	{method: "DELETE", pattern: "/cluster/peer/{*}", op: "cluster.peer.delete", class: classAdmin, body: '-'},
	{method: "GET", pattern: "/cluster/telemetry", op: "cluster.telemetry", class: classAdmin, body: '-'},
	{method: "GET", pattern: "/telemetry", op: "telemetry", class: classAdmin, body: '-'},
	{method: "GET", pattern: "/metrics", op: "metrics", class: classAdmin, body: '-'},
	{method: "GET", pattern: "/locks", op: "locks.get", class: classAdmin, body: '-'},
	{method: "POST", pattern: "/locks", op: "locks.set", class: classAdmin, body: 'j'},
	{method: "GET", pattern: "/issues", op: "issues.get", class: classAdmin, body: '-'},
	{method: "DELETE", pattern: "/issues", op: "issues.clear", class: classAdmin, body: '-'},
	{method: "GET", pattern: "/healthz", op: "service.healthz", class: classMeta, body: '-'},
	{method: "GET", pattern: "/livez", op: "service.livez", class: classMeta, body: '-'},
	{method: "GET", pattern: "/readyz", op: "service.readyz", class: classMeta, body: '-'},
})

func compile(rs []route) []route {
	for i := range rs {
		r := &rs[i]
		r.segs = splitPath(r.pattern)
		switch r.class {
		case classSearch, classRetrieve, classMeta, classList:
			r.action = protocol.ActionRead
		case classWrite:
			r.action = protocol.ActionWrite
		default:
			r.action = protocol.ActionAdmin
		}
	}
	return rs
}

func splitPath(p string) []string {
	if p == "/" || p == "" {
		return nil
	}
	return strings.Split(strings.TrimPrefix(p, "/"), "/")
}

// match is a route resolved for one request.
type match struct {
	r          *route
	collection string
	params     []string
}

// canonicalPath applies Qdrant's normalization to the escaped request path
// and decodes it, refusing what Warden could read differently from actix:
// actix-web's NormalizePath::trim() merges repeated "/" and trims a
// trailing "/"; its router decodes percent escapes except "%2F", "%25" and
// "%2B". Warden decodes only escapes of letters, digits, "-" and "_" (which
// both decode identically) and refuses every other escape.
func canonicalPath(escaped string) (string, *protocol.Error) {
	if escaped == "" || escaped[0] != '/' {
		return "", errf(http.StatusBadRequest, CodeInvalidPath, "invalid path")
	}
	var b strings.Builder
	b.Grow(len(escaped))
	for i := 0; i < len(escaped); i++ {
		c := escaped[i]
		switch {
		case c == '/' && b.Len() > 0 && strings.HasSuffix(b.String(), "/"):
			continue // merge "//" as NormalizePath does
		case c == '%':
			if i+2 >= len(escaped) {
				return "", errf(http.StatusBadRequest, CodeInvalidPath, "invalid percent-encoding in path")
			}
			d, ok := unhex2(escaped[i+1], escaped[i+2])
			if !ok || !nameByte(d) || d == '.' {
				return "", errf(http.StatusBadRequest, CodeInvalidPath, "percent-encoded character not allowed in path")
			}
			b.WriteByte(d)
			i += 2
		case c < 0x21 || c >= 0x7f || c == '+' || c == '\\':
			return "", errf(http.StatusBadRequest, CodeInvalidPath, "character not allowed in path")
		default:
			b.WriteByte(c)
		}
	}
	p := b.String()
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	return p, nil
}

func unhex2(a, b byte) (byte, bool) {
	h, ok1 := unhex(a)
	l, ok2 := unhex(b)
	return h<<4 | l, ok1 && ok2
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// nameByte reports whether c may appear in a collection name as Warden
// accepts it: ASCII letters, digits, "-", "_" and ".". Qdrant accepts more
// (any UTF-8 without / \ : * ? " < > | NUL); those names are refused here
// because their escaped and unescaped spellings could be decided apart.
func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
}

func validName(s string) bool {
	if s == "" || len(s) > maxCollectionName || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i]) {
			return false
		}
	}
	return true
}

// resolve finds the route for method and canonical path. It returns nil
// for an unknown route; a known path with another method yields a 405.
func resolve(method, path string) (*match, *protocol.Error) {
	segs := splitPath(path)
	var best *route
	var bestParams []string
	bestScore := -1
	pathKnown := false
	for i := range routes {
		r := &routes[i]
		params, score, ok := matchSegs(r.segs, segs)
		if !ok || r.op == "points.get" && !validPointID(params[len(params)-1]) {
			continue
		}
		pathKnown = true
		if r.method != method || score <= bestScore {
			continue
		}
		best, bestParams, bestScore = r, params, score
	}
	if best == nil {
		if pathKnown {
			return nil, errf(http.StatusMethodNotAllowed, protocol.CodeMethodNotAllowed, "method not allowed")
		}
		return nil, errf(http.StatusNotFound, protocol.CodeUnknownRoute, "unknown Qdrant endpoint")
	}
	m := &match{r: best}
	for i, s := range best.segs {
		switch s {
		case "{c}":
			m.collection = bestParams[i]
		case "{*}":
			m.params = append(m.params, bestParams[i])
		}
	}
	if m.collection != "" && !validName(m.collection) {
		return nil, errf(http.StatusBadRequest, CodeInvalidPath, "collection name not allowed through Warden")
	}
	for _, p := range m.params {
		if p == "" || p == "." || p == ".." {
			return nil, errf(http.StatusBadRequest, CodeInvalidPath, "invalid path")
		}
	}
	return m, nil
}

// matchSegs matches a pattern; the score counts literal segments so that
// "/collections/aliases" beats "/collections/{c}".
func matchSegs(pat, segs []string) ([]string, int, bool) {
	if len(pat) != len(segs) {
		return nil, 0, false
	}
	score := 0
	for i, p := range pat {
		switch p {
		case "{c}", "{*}":
			if segs[i] == "" {
				return nil, 0, false
			}
		default:
			if p != segs[i] {
				return nil, 0, false
			}
			score++
		}
	}
	return segs, score, true
}

// queryParams are the URL parameters Qdrant reads on point routes, by
// class. Anything else on a read or write is refused: an unknown parameter
// may be one a newer server honours.
var queryParams = map[class][]string{
	classSearch:   {"consistency", "timeout"},
	classRetrieve: {"consistency", "timeout"},
	classWrite:    {"wait", "ordering", "timeout"},
	classMeta:     {},
	classList:     {},
}

func checkQuery(c class, raw string) *protocol.Error {
	allowed, checked := queryParams[c]
	if !checked || raw == "" {
		if raw != "" && strings.ContainsAny(raw, ";") {
			return errf(http.StatusBadRequest, protocol.CodeInvalidRequest, "invalid query string")
		}
		return nil
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return errf(http.StatusBadRequest, protocol.CodeInvalidRequest, "invalid query string")
	}
	for k, v := range q {
		ok := false
		for _, a := range allowed {
			if k == a {
				ok = true
			}
		}
		if !ok {
			return errf(http.StatusBadRequest, protocol.CodeInvalidRequest, "query parameter not allowed through Warden")
		}
		if len(v) != 1 {
			return errf(http.StatusBadRequest, protocol.CodeInvalidRequest, "repeated query parameter")
		}
		if !validParam(k, v[0]) {
			return errf(http.StatusBadRequest, protocol.CodeInvalidRequest, "invalid value for query parameter %s", k)
		}
	}
	return nil
}

func validParam(k, v string) bool {
	switch k {
	case "wait":
		return v == "true" || v == "false"
	case "ordering":
		return v == "weak" || v == "medium" || v == "strong"
	case "consistency":
		return v == "majority" || v == "quorum" || v == "all" || digits(v)
	case "timeout":
		return digits(v)
	}
	return false
}

func digits(s string) bool {
	if s == "" || len(s) > 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validPointID accepts the ExtendedPointId spellings Qdrant parses in a
// path: an unsigned 64-bit integer, or a UUID (simple, hyphenated, braced
// or urn:uuid:). Anything else would be refused upstream anyway.
func validPointID(s string) bool {
	if _, err := strconv.ParseUint(s, 10, 64); err == nil {
		return true
	}
	u := s
	if len(u) > 9 && strings.EqualFold(u[:9], "urn:uuid:") {
		u = u[9:]
	} else if strings.HasPrefix(u, "{") && strings.HasSuffix(u, "}") {
		u = u[1 : len(u)-1]
	}
	switch len(u) {
	case 32:
	case 36:
		if u[8] != '-' || u[13] != '-' || u[18] != '-' || u[23] != '-' {
			return false
		}
		u = strings.ReplaceAll(u, "-", "")
	default:
		return false
	}
	for i := 0; i < len(u); i++ {
		if _, ok := unhex(u[i]); !ok {
			return false
		}
	}
	return len(u) == 32
}
