package mcp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardenhq/warden/internal/protocol"
)

// This file is a small stand-in for internal/gateway: it runs a Protocol
// exactly the way the gateway does (Parse → Calls → decide → Forward →
// upstream → Response → Audit) in front of a real upstream on 127.0.0.1,
// with a real decision function over a table of rules.

// peerHeader is how test clients say who they are. The harness plays the
// gateway's mTLS layer: it reads the header, deletes it, and puts the
// identity in the context with protocol.WithPeer — never in a header the
// protocol could read.
const peerHeader = "X-Test-Peer"

const (
	alice = "spiffe://example.org/agent/alice"
	bob   = "spiffe://example.org/agent/bob"
)

// rule matches calls; the first matching rule decides; no match denies.
type rule struct {
	peer       string // "" any
	op         string // Operation; "" any
	tool       string // resource.tool; "" any
	uriPrefix  string
	direction  string
	promptName string
	argKey     string // with argPrefix: arguments[argKey] must be a string with this prefix
	argPrefix  string
	allow      bool
}

func (r rule) match(peer string, c protocol.Call) bool {
	if r.peer != "" && r.peer != peer || r.op != "" && r.op != c.Operation {
		return false
	}
	res := c.Resource
	if r.tool != "" && res["tool"] != r.tool {
		return false
	}
	if r.direction != "" && res["direction"] != r.direction {
		return false
	}
	if r.promptName != "" && res["prompt"] != r.promptName {
		return false
	}
	if r.uriPrefix != "" {
		u, _ := res["uri"].(string)
		if !strings.HasPrefix(u, r.uriPrefix) {
			return false
		}
	}
	if r.argKey != "" {
		if res["listing"] == true {
			return true // listing: arguments are unknown, the tool is usable
		}
		args, _ := res["arguments"].(map[string]any)
		s, _ := args[r.argKey].(string)
		if !strings.HasPrefix(s, r.argPrefix) {
			return false
		}
	}
	return true
}

func decide(rules []rule, peer string, calls []protocol.Call) []protocol.Decision {
	ds := make([]protocol.Decision, len(calls))
	for i, c := range calls {
		ds[i] = protocol.Decision{Reasons: []string{"no_rule"}}
		for _, r := range rules {
			if r.match(peer, c) {
				ds[i] = protocol.Decision{Allow: r.allow, Reasons: []string{"rule"}}
				break
			}
		}
	}
	return ds
}

type harness struct {
	t        testing.TB
	p        *Protocol
	backend  string
	upstream *url.URL
	rt       http.RoundTripper
	srv      *httptest.Server

	// guard is lent to Parse like the gateway's Request.Guard (nil: off).
	guard protocol.Guard
	// authz, when set, decides every call (request and response path)
	// instead of rules: the real policy engine (see opaAuthzWith).
	authz protocol.Authorizer

	mu      sync.Mutex
	rules   []rule
	audits  []map[string]any
	authzN  atomic.Int64
	bodyCap int
}

func newHarness(t testing.TB, p *Protocol, upstream string, rules ...rule) *harness {
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, p: p, backend: "be", upstream: u, rt: &http.Transport{}, rules: rules, bodyCap: 8 << 20}
	h.srv = httptest.NewServer(h)
	t.Cleanup(h.srv.Close)
	return h
}

func (h *harness) setRules(rs ...rule) {
	h.mu.Lock()
	h.rules = rs
	h.mu.Unlock()
}

func (h *harness) decide(peer string, calls []protocol.Call) []protocol.Decision {
	h.mu.Lock()
	rs := h.rules
	h.mu.Unlock()
	return decide(rs, peer, calls)
}

func (h *harness) lastAudit() map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.audits) == 0 {
		return nil
	}
	return h.audits[len(h.audits)-1]
}

func (h *harness) allAudits() []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]map[string]any(nil), h.audits...)
}

func (h *harness) audit(x protocol.Exchange) {
	if x == nil {
		return
	}
	a := x.Audit()
	h.mu.Lock()
	h.audits = append(h.audits, a)
	h.mu.Unlock()
}

func (h *harness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	peer := r.Header.Get(peerHeader)
	r.Header.Del(peerHeader)
	ctx := protocol.WithPeer(r.Context(), peer)
	r = r.WithContext(ctx)
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(io.LimitReader(r.Body, int64(h.bodyCap)+1))
		if err != nil || len(b) > h.bodyCap {
			h.p.WriteError(w, r, protocol.Errorf(413, protocol.CodeBodyTooLarge, "too large"))
			return
		}
		body = b
	}
	x, err := h.p.Parse(ctx, &protocol.Request{HTTP: r, Body: body, Backend: h.backend, Guard: h.guard})
	if err != nil {
		h.p.WriteError(w, r, protocol.AsError(err))
		return
	}
	defer h.audit(x)
	calls := x.Calls()
	ds := h.decide(peer, calls)
	if h.authz != nil {
		if ds, err = h.authz(ctx, calls); err != nil {
			h.p.WriteError(w, r, &protocol.Error{Status: http.StatusForbidden, Code: protocol.CodePolicyError, Message: "policy error", Err: err})
			return
		}
	}
	allowed := false
	for _, d := range ds {
		allowed = allowed || d.Allow
	}
	if !allowed {
		h.p.WriteError(w, r, protocol.Errorf(http.StatusForbidden, protocol.CodePolicyDenied, "request denied by policy"))
		return
	}
	out, err := x.Forward(ctx, ds)
	if err != nil {
		h.p.WriteError(w, r, protocol.AsError(err))
		return
	}
	u := *h.upstream
	u.Path = r.URL.Path
	u.RawQuery = r.URL.RawQuery
	var rb io.Reader
	if out != nil {
		rb = bytes.NewReader(out)
	}
	up, _ := http.NewRequestWithContext(ctx, r.Method, u.String(), rb)
	for k, vs := range r.Header {
		switch k {
		case "Connection", "Content-Length", "Accept-Encoding":
			continue
		}
		up.Header[k] = vs
	}
	up.Header.Set("Accept-Encoding", "identity")
	resp, err := h.rt.RoundTrip(up)
	if err != nil {
		h.p.WriteError(w, r, &protocol.Error{Status: 502, Code: protocol.CodeUpstreamError, Message: "upstream", Err: err})
		return
	}
	defer resp.Body.Close()
	env := &protocol.ResponseEnv{Authorize: func(ctx context.Context, calls []protocol.Call) ([]protocol.Decision, error) {
		h.authzN.Add(1)
		if h.authz != nil {
			return h.authz(ctx, calls)
		}
		return h.decide(peer, calls), nil
	}}
	if err := x.Response(ctx, resp, env); err != nil {
		h.p.WriteError(w, r, protocol.AsError(err))
		return
	}
	for k, vs := range resp.Header {
		if k == "Connection" || k == "Transfer-Encoding" {
			continue
		}
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	fl, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

// peerClient is an HTTP client that announces peer to the harness.
func peerClient(peer string) *http.Client {
	return &http.Client{Transport: peerRT{peer: peer, rt: &http.Transport{}}, Timeout: 30 * time.Second}
}

type peerRT struct {
	peer string
	rt   http.RoundTripper
}

func (p peerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(peerHeader, p.peer)
	return p.rt.RoundTrip(r)
}

// counter wraps an upstream handler and counts what it saw, per JSON-RPC
// method when the body is a single message.
type counter struct {
	next http.Handler
	mu   sync.Mutex
	n    int
	meth map[string]int
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	c.mu.Lock()
	c.n++
	if c.meth == nil {
		c.meth = map[string]int{}
	}
	for _, m := range []string{"tools/call", "tools/list", "initialize", "ping"} {
		if bytes.Contains(b, []byte(`"method":"`+m+`"`)) {
			c.meth[m]++
		}
	}
	c.mu.Unlock()
	c.next.ServeHTTP(w, r)
}

func (c *counter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *counter) method(m string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.meth[m]
}

// rawPost sends one POST through the harness and returns status and body.
func rawPost(t testing.TB, url, peer string, hdr map[string]string, body string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := peerClient(peer).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func mustNew(t testing.TB, opts map[string]any, now func() time.Time) *Protocol {
	t.Helper()
	if opts == nil {
		opts = map[string]any{}
	}
	p, err := New(map[string]map[string]any{"be": opts}, Deps{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func fmtRules(rs []rule) string { return fmt.Sprint(len(rs)) }

// eventually waits until cond holds over the audits recorded so far: the
// harness, like the gateway, records an exchange's audit only after its
// response body ended, which may be after the client has its answer.
func (h *harness) eventually(t testing.TB, what string, cond func([]map[string]any) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond(h.allAudits()) {
		if time.Now().After(deadline) {
			t.Fatalf("audit never showed %s: %v", what, h.allAudits())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
