package gateway

import (
	"context"
	"net"
	"strings"
	"testing"
)

func TestRouterMostSpecificFirst(t *testing.T) {
	b := &backend{}
	rs := []*route{
		{name: "any-root", prefix: "/", backend: b},
		{name: "any-v1", prefix: "/v1/", backend: b},
		{name: "host-v1", host: "api.example.com", prefix: "/v1/", backend: b},
		{name: "kb", prefix: "/kb", backend: b},
		{name: "admin-only", prefix: "/ops/", listener: "ops", backend: b},
	}
	rt := newRouter(rs)
	cases := []struct{ listener, host, path, want string }{
		{"data", "api.example.com:8443", "/v1/chat", "host-v1"},
		{"data", "API.example.com.", "/v1/chat", "host-v1"},
		{"data", "other", "/v1/chat", "any-v1"},
		{"data", "other", "/v1", "any-root"},
		{"data", "", "/kb", "kb"},
		{"data", "", "/kb/x", "kb"},
		{"data", "", "/kbx", "any-root"},
		{"data", "", "/ops/x", "any-root"},
		{"ops", "", "/ops/x", "admin-only"},
	}
	for _, c := range cases {
		got := rt.match(c.listener, c.host, c.path)
		if got == nil || got.name != c.want {
			name := "<nil>"
			if got != nil {
				name = got.name
			}
			t.Errorf("match(%q, %q, %q) = %s, want %s", c.listener, c.host, c.path, name, c.want)
		}
	}
	if newRouter([]*route{{name: "x", prefix: "/x/", backend: b}}).match("", "", "/y") != nil {
		t.Error("unmatched path returned a route")
	}
}

func TestCanonicalPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/":              true,
		"/v1/chat":       true,
		"/v1/chat/":      true,
		"":               false,
		"v1":             false,
		"//v1":           false,
		"/v1//chat":      false,
		"/v1/./chat":     false,
		"/v1/../admin":   false,
		"/v1/%2e%2e/x":   false,
		"/v1/%2E/x":      false,
		"/a%2fb":         false,
		"/a%2Fb":         false,
		"/a%5cb":         false,
		"/a\\b":          false,
		"/a%20b":         true,
		"/collections/x": true,
	} {
		if got := canonicalPath(p); got != want {
			t.Errorf("canonicalPath(%q) = %v, want %v", p, got, want)
		}
	}
}

type fakeConn struct {
	net.Conn
	closed bool
}

func (c *fakeConn) Close() error { c.closed = true; return nil }

func TestKillerEndsRequestsAndConnections(t *testing.T) {
	k := newKiller()
	ctx1, cancel1 := context.WithCancel(context.Background())
	ctx2, cancel2 := context.WithCancel(context.Background())
	ctxOther, cancelOther := context.WithCancel(context.Background())
	defer cancelOther()
	done1 := k.track("a", cancel1)
	_ = k.track("a", cancel2)
	_ = k.track("b", cancelOther)
	c := &fakeConn{}
	k.trackConn("a", c)
	k.trackConn("a", c) // idempotent
	done1()             // request 1 finished before the revocation
	reqs, conns := k.kill("a")
	if reqs != 1 || conns != 1 {
		t.Fatalf("kill = %d requests, %d conns; want 1, 1", reqs, conns)
	}
	if ctx1.Err() != nil {
		t.Error("a finished request was cancelled")
	}
	if ctx2.Err() == nil || !c.closed {
		t.Error("in-flight request or connection of the revoked identity survived")
	}
	if ctxOther.Err() != nil {
		t.Error("another identity's request was cancelled")
	}
	if r, c := k.kill("a"); r != 0 || c != 0 {
		t.Error("second kill found leftovers")
	}
}

func TestStrictQuery(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want string // canonical encoding; "!" = refused
	}{
		{"", ""},
		{"b=2&a=1&a=0", "a=1&a=0&b=2"},
		{"q=hello%20world", "q=hello%20world"},
		{"q=a+b", "q=a%20b"},
		{"q=a%2Bb", "q=a%2Bb"},
		{"flag", "flag="},
		{"a=1;b=2", "!"},
		{"a=%zz", "!"},
		{"a=%ff", "!"},
		{"a=%00", "!"},
		{"a=%0d%0a", "!"},
		{strings.Repeat("a=1&", 257), "!"},
	} {
		q, err := strictQuery(tc.raw)
		if tc.want == "!" {
			if err == nil {
				t.Errorf("%.40q: accepted", tc.raw)
			}
			continue
		}
		if err != nil || canonicalQuery(q) != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.raw, canonicalQuery(q), err, tc.want)
		}
	}
}
