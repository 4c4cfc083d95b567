package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/protocol"
)

// backend is a configured upstream with its protocol and transport.
type backend struct {
	cfg   *config.Backend
	base  *url.URL
	proto protocol.Protocol
	rt    roundTripper
}

// route is a compiled config.Route.
type route struct {
	name     string
	host     string // lower-case, "" = any
	prefix   string
	strip    bool
	listener string
	backend  *backend
}

// router matches most specific first: an exact host before any host, then the
// longest path prefix (on a segment boundary).
type router struct{ routes []*route }

func newRouter(rs []*route) *router {
	sort.SliceStable(rs, func(i, j int) bool {
		if (rs[i].host != "") != (rs[j].host != "") {
			return rs[i].host != ""
		}
		return len(rs[i].prefix) > len(rs[j].prefix)
	})
	return &router{routes: rs}
}

func (rt *router) match(listener, host, path string) *route {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, r := range rt.routes {
		if r.listener != "" && r.listener != listener {
			continue
		}
		if r.host != "" && r.host != host {
			continue
		}
		if prefixMatch(r.prefix, path) {
			return r
		}
	}
	return nil
}

// prefixMatch matches on segment boundaries: "/v1" matches "/v1" and
// "/v1/x" but not "/v1x"; "/v1/" matches "/v1/x" only.
func prefixMatch(prefix, path string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	if len(path) == len(prefix) || strings.HasSuffix(prefix, "/") {
		return true
	}
	return path[len(prefix)] == '/'
}

// canonicalPath reports whether p is already in canonical form: absolute, no
// empty, "." or ".." segments. Warden refuses other spellings instead of
// normalizing them, so that what policy saw is what the upstream resolves.
// (Protocols with their own canonicalization rules, such as Qdrant's, check
// further.) A trailing slash is allowed.
func canonicalPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		switch s {
		case "":
			if i != len(segs)-1 { // only a trailing slash may be empty
				return false
			}
		case ".", "..":
			return false
		}
	}
	// Encoded separators and dots would be decoded by some upstreams only.
	lp := strings.ToLower(p)
	return !strings.Contains(lp, "%2f") && !strings.Contains(lp, "%5c") && !strings.Contains(lp, "%2e") && !strings.Contains(p, "\\")
}

// maxQueryParams bounds the names and values of one query string.
const maxQueryParams = 256

// strictQuery parses a query string, refusing what is ambiguous: a
// malformed escape, a ";" separator (some servers split on it, Go does
// not), invalid UTF-8 or control characters after unescaping, and more than
// maxQueryParams parameters. Repeated names keep their values in order.
func strictQuery(raw string) (url.Values, error) {
	if raw == "" {
		return nil, nil
	}
	if strings.Contains(raw, ";") {
		return nil, errors.New(`";" is not a separator`)
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, errors.New("bad escape")
	}
	n := 0
	for k, vs := range q {
		n += len(vs)
		for _, s := range append([]string{k}, vs...) {
			if !utf8.ValidString(s) {
				return nil, errors.New("not valid UTF-8")
			}
			for i := 0; i < len(s); i++ {
				if s[i] < 0x20 || s[i] == 0x7f {
					return nil, errors.New("control character")
				}
			}
		}
	}
	if n > maxQueryParams {
		return nil, fmt.Errorf("more than %d parameters", maxQueryParams)
	}
	return q, nil
}

// canonicalQuery encodes q sorted by name, each name's values in order,
// with spaces as %20 rather than "+" (an upstream that reads "+" literally,
// as RFC 3986 allows, would otherwise see another value than policy did).
// A name without "=" in the original comes out as "name=".
func canonicalQuery(q url.Values) string {
	return strings.ReplaceAll(q.Encode(), "+", "%20")
}
