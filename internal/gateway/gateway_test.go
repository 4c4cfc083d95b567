package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardenhq/warden/internal/audit"
	"github.com/wardenhq/warden/internal/identity/devca"
	"github.com/wardenhq/warden/internal/revoke"
)

func errCode(t *testing.T, body string) string {
	t.Helper()
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body is not JSON: %q", body)
	}
	return e.Error.Code
}

func TestDecisions(t *testing.T) {
	e := newTestEnv(t, envOpts{})
	cases := []struct {
		client, method, path, body string
		want                       int
		code                       string
	}{
		{"reader", "GET", "/docs/1", "", 200, ""},
		{"reader", "POST", "/docs/1", `{"a":1}`, 403, "policy_denied"},
		{"writer", "POST", "/docs/1", `{"a":1}`, 200, ""},
		{"writer", "DELETE", "/docs/1", "", 200, ""},
		{"stranger", "GET", "/docs/1", "", 403, "policy_denied"},
	}
	for _, tc := range cases {
		t.Run(tc.client+" "+tc.method, func(t *testing.T) {
			before := e.upstream.count()
			resp, body := e.do(tc.client, tc.method, tc.path, tc.body)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, tc.want, body)
			}
			reached := e.upstream.count() - before
			if tc.want == 200 && reached != 1 {
				t.Errorf("upstream saw %d requests, want 1", reached)
			}
			if tc.want != 200 {
				if reached != 0 {
					t.Errorf("denied request reached the upstream")
				}
				if got := errCode(t, body); got != tc.code {
					t.Errorf("code %q, want %q", got, tc.code)
				}
			}
		})
	}
}

func TestIdentityHeadersStrippedAndSetFromCertificate(t *testing.T) {
	e := newTestEnv(t, envOpts{})
	resp, body := e.do("reader", "GET", "/x", "",
		"X-Warden-Spiffe-Id", "spiffe://warden.test/pipeline/writer",
		"X-Forwarded-Client-Cert", "By=spiffe://evil;URI=spiffe://warden.test/pipeline/writer",
		"X-Spiffe-Id", "spiffe://warden.test/pipeline/writer",
		"X-Http-Method-Override", "DELETE")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	got := e.upstream.last()
	if v := got.Header.Values("X-Warden-Spiffe-Id"); len(v) != 1 || v[0] != readerID.String() {
		t.Errorf("identity header upstream = %v, want exactly [%s]", v, readerID)
	}
	for _, h := range []string{"X-Forwarded-Client-Cert", "X-Spiffe-Id", "X-Http-Method-Override"} {
		if v := got.Header.Get(h); v != "" {
			t.Errorf("%s reached the upstream: %q", h, v)
		}
	}
	if got.Header.Get("X-Request-Id") == "" || got.Header.Get("X-Request-Id") != resp.Header.Get("X-Request-Id") {
		t.Errorf("request id not propagated: upstream %q, client %q", got.Header.Get("X-Request-Id"), resp.Header.Get("X-Request-Id"))
	}
}

func TestTLSRefusals(t *testing.T) {
	e := newTestEnv(t, envOpts{})
	// No client certificate.
	if _, err := e.dev.NoCertClient(wardenID).Get(e.url + "/x"); err == nil {
		t.Error("request without a client certificate succeeded")
	}
	// Another trust domain's CA, same path.
	other, err := devca.New(spiffeid.RequireTrustDomainFromString("evil.test"), devca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	evil, err := other.IssueX509(spiffeid.RequireFromString("spiffe://evil.test/agent/reader"), devca.X509Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.dev.Client(evil, wardenID).Get(e.url + "/x"); err == nil {
		t.Error("SVID from an untrusted trust domain was accepted")
	}
	// Expired SVID from the right CA.
	old, err := e.dev.CA.IssueX509(readerID, devca.X509Options{NotBefore: time.Now().Add(-2 * time.Hour), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.dev.Client(old, wardenID).Get(e.url + "/x"); err == nil {
		t.Error("expired SVID was accepted")
	}
	if e.upstream.count() != 0 {
		t.Errorf("refused handshakes reached the upstream %d times", e.upstream.count())
	}
}

func TestBadInput(t *testing.T) {
	e := newTestEnv(t, envOpts{})
	big := strings.Repeat("a", 70000)
	cases := []struct {
		name   string
		method string
		path   string
		body   string
		hdr    []string
		want   int
		code   string
	}{
		{"body too large", "POST", "/x", big, nil, 413, "body_too_large"},
		{"upgrade", "GET", "/x", "", []string{"Connection", "Upgrade", "Upgrade", "websocket"}, 400, "upgrade_refused"},
		{"h2c upgrade", "GET", "/x", "", []string{"Connection", "Upgrade, HTTP2-Settings", "Upgrade", "h2c", "HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"}, 400, "upgrade_refused"},
		{"dot segments", "GET", "/a/%2e%2e/b", "", nil, 400, "invalid_request"},
		{"double slash", "GET", "//x", "", nil, 400, "invalid_request"},
		{"unknown encoding", "POST", "/x", "abc", []string{"Content-Encoding", "br"}, 415, "unsupported_media_type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.upstream.count()
			resp, body := e.do("writer-h1", tc.method, tc.path, tc.body, tc.hdr...)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.want, body)
			}
			if got := errCode(t, body); got != tc.code {
				t.Errorf("code %q, want %q", got, tc.code)
			}
			if e.upstream.count() != before {
				t.Error("refused request reached the upstream")
			}
		})
	}
}

func TestHeaderTooLarge(t *testing.T) {
	e := newTestEnv(t, envOpts{})
	// Over HTTP/2 Go refuses oversized header blocks with GOAWAY; HTTP/1.1 gets 431.
	resp, body := e.do("writer-h1", "GET", "/x", "", "X-Big", strings.Repeat("b", 16000)) // net/http allows 4 KiB slack
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431: %s", resp.StatusCode, body)
	}
	if e.upstream.count() != 0 {
		t.Fatal("oversized header reached the upstream")
	}
}

func TestUnknownRoute(t *testing.T) {
	// Only /api/ is routed here.
	e := newTestEnv(t, envOpts{})
	e.g.router = newRouter([]*route{{name: "api", prefix: "/api/", backend: e.g.router.routes[0].backend}})
	resp, body := e.do("writer", "GET", "/other", "")
	if resp.StatusCode != 404 || errCode(t, body) != "unknown_route" {
		t.Fatalf("got %d %s, want 404 unknown_route", resp.StatusCode, body)
	}
}

// failingAudit refuses every append, as a full disk would.
type failingAudit struct{}

func (failingAudit) Append(context.Context, *audit.Record) error {
	return fmt.Errorf("disk full: %w", audit.ErrUnavailable)
}

func TestAuditFailureFailsClosed(t *testing.T) {
	e := newTestEnv(t, envOpts{gwOpts: Options{Audit: failingAudit{}}})
	resp, body := e.do("writer", "GET", "/x", "")
	if resp.StatusCode != http.StatusServiceUnavailable || errCode(t, body) != "audit_unavailable" {
		t.Fatalf("got %d %s, want 503 audit_unavailable", resp.StatusCode, body)
	}
	if e.upstream.count() != 0 {
		t.Fatal("request was forwarded although its audit record could not be written")
	}
}

func TestPolicyErrorFailsClosed(t *testing.T) {
	// Two complete definitions that disagree: a runtime conflict error.
	const conflicting = `package warden.authz

decision := {"allow": true, "reasons": ["a"], "obligations": {}} if input.action == "read"

decision := {"allow": true, "reasons": ["b"], "obligations": {}} if input.subject.path != ""
`
	e := newTestEnv(t, envOpts{policy: conflicting})
	resp, body := e.do("writer", "GET", "/x", "")
	if resp.StatusCode != 403 || errCode(t, body) != "policy_error" {
		t.Fatalf("got %d %s, want 403 policy_error", resp.StatusCode, body)
	}
	if e.upstream.count() != 0 {
		t.Fatal("request was forwarded on a policy error")
	}
}

func TestAuditRecordsDecisionsAndVerifies(t *testing.T) {
	e := newTestEnv(t, envOpts{auditMode: "strict"})
	e.do("reader", "GET", "/a", "", "Authorization", "Bearer sk-secret-token-123")
	e.do("reader", "POST", "/a", `{"password":"hunter2"}`)
	e.stop()
	path := e.cfg.Resolve(e.cfg.Audit.Path)
	if rep, err := audit.Verify(path); err != nil || !rep.OK() {
		t.Fatalf("audit chain does not verify: %v %v", err, rep.Problem)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"sk-secret-token-123", "hunter2", "Bearer"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("audit log contains %q", secret)
		}
	}
	type line struct {
		Event     string   `json:"event"`
		RequestID string   `json:"request_id"`
		SpiffeID  string   `json:"spiffe_id"`
		Backend   string   `json:"backend"`
		Action    string   `json:"action"`
		Decision  string   `json:"decision"`
		Reasons   []string `json:"reasons"`
		Status    int      `json:"status"`
		BytesOut  int64    `json:"bytes_out"`
	}
	var decisions, outcomes []line
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for sc.Scan() {
		var r line
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		switch r.Event {
		case "decision":
			decisions = append(decisions, r)
		case "outcome":
			outcomes = append(outcomes, r)
		}
	}
	if len(decisions) != 2 || len(outcomes) != 1 {
		t.Fatalf("got %d decisions and %d outcomes, want 2 and 1", len(decisions), len(outcomes))
	}
	allow, deny := decisions[0], decisions[1]
	if allow.Decision != "allow" || allow.SpiffeID != readerID.String() || allow.Action != "read" || allow.Backend != "app" {
		t.Errorf("allow record: %+v", allow)
	}
	if deny.Decision != "deny" || deny.Status != 403 || deny.Action != "write" || len(deny.Reasons) == 0 {
		t.Errorf("deny record: %+v", deny)
	}
	if outcomes[0].RequestID != allow.RequestID || outcomes[0].Status != 200 || outcomes[0].BytesOut == 0 {
		t.Errorf("outcome record: %+v", outcomes[0])
	}
}

func TestRevocationKillsKeepAliveAndStream(t *testing.T) {
	started := make(chan struct{}, 1)
	stream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stream" {
			w.WriteHeader(200)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		fl := w.(http.Flusher)
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil {
				return
			}
			fl.Flush()
			if i == 0 {
				started <- struct{}{}
			}
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	e := newTestEnv(t, envOpts{handler: stream})
	// A keep-alive connection is established and used.
	if resp, _ := e.do("reader", "GET", "/x", ""); resp.StatusCode != 200 {
		t.Fatalf("warm-up status %d", resp.StatusCode)
	}
	// An open stream.
	resp, err := e.clients["reader"].Get(e.url + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-started
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}

	// Revoke through the admin API.
	adminURL := "https://" + e.g.Addr("admin") + "/v1/revocations"
	rresp, err := e.clients["admin"].Post(adminURL, "application/json",
		strings.NewReader(`{"spiffe_id":"`+readerID.String()+`","reason":"test"}`))
	if err != nil {
		t.Fatal(err)
	}
	rresp.Body.Close()
	if rresp.StatusCode != 200 {
		t.Fatalf("revoke status %d", rresp.StatusCode)
	}

	// The stream must end (not cleanly) promptly.
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := br.ReadString('\n'); err != nil {
				ended <- err
				return
			}
		}
	}()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("stream still open 5s after revocation")
	}
	// New requests are refused.
	if resp, body := e.do("reader", "GET", "/x", ""); resp.StatusCode != 403 || errCode(t, body) != "identity_revoked" {
		t.Fatalf("after revoke: %d %s", resp.StatusCode, body)
	}
	// Others are unaffected.
	if resp, _ := e.do("writer", "GET", "/x", ""); resp.StatusCode != 200 {
		t.Fatalf("writer after reader's revocation: %d", resp.StatusCode)
	}
	// Revocations persist across restarts.
	e.stop()
	e2cfg := *e.cfg
	g2, err := New(context.Background(), &e2cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	if _, revoked, _ := g2.revs.Lookup(readerID.String()); !revoked {
		t.Fatal("revocation did not survive a restart")
	}
}

func TestAdminRequiresAdminIdentity(t *testing.T) {
	e := newTestEnv(t, envOpts{})
	base := "https://" + e.g.Addr("admin")
	resp, err := e.clients["writer"].Post(base+"/v1/revocations", "application/json",
		strings.NewReader(`{"spiffe_id":"`+readerID.String()+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("non-admin revoke status %d, want 403", resp.StatusCode)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := e.clients["admin"].Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
}

func TestReloadRejectsBrokenPolicy(t *testing.T) {
	const allowAll = `package warden.authz

decision := {"allow": true, "reasons": ["allow_all"], "obligations": {}}
`
	e := newTestEnv(t, envOpts{policy: allowAll})
	if resp, _ := e.do("stranger", "GET", "/x", ""); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	write(t, filepath.Join(e.dev.Dir, "policy", "authz.rego"), "package warden.authz\n\ndecision := {\n")
	if err := e.g.Reload(context.Background()); err == nil {
		t.Fatal("broken policy was accepted")
	}
	if resp, _ := e.do("stranger", "GET", "/x", ""); resp.StatusCode != 200 {
		t.Fatalf("last good policy stopped serving: %d", resp.StatusCode)
	}
}

func TestGracefulShutdownDrains(t *testing.T) {
	release := make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.WriteHeader(200)
		_, _ = w.Write([]byte("done"))
	})
	e := newTestEnv(t, envOpts{handler: slow})
	got := make(chan int, 1)
	go func() {
		resp, err := e.clients["reader"].Get(e.url + "/slow")
		if err != nil {
			got <- -1
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	// Wait until the request is in flight upstream.
	deadline := time.Now().Add(5 * time.Second)
	for e.upstream.count() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	e.cancel() // begin shutdown
	time.Sleep(50 * time.Millisecond)
	close(release)
	if s := <-got; s != 200 {
		t.Fatalf("in-flight request during shutdown: status %d, want 200", s)
	}
	select {
	case <-e.done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after drain")
	}
	if _, err := e.clients["reader"].Get(e.url + "/x"); err == nil {
		t.Fatal("new request accepted after shutdown")
	} else if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "refused") && !strings.Contains(err.Error(), "EOF") && !strings.Contains(err.Error(), "reset") {
		t.Logf("after shutdown: %v", err)
	}
}

func TestJWTSVIDListener(t *testing.T) {
	e := newTestEnv(t, envOpts{})
	client := e.dev.NoCertClient(wardenID)
	call := func(token string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", e.jwtURL+"/docs", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp, readAll(resp)
	}
	good, err := e.dev.CA.IssueJWT(readerID, []string{"warden"}, devca.JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	resp, body := call(good)
	if resp.StatusCode != 200 {
		t.Fatalf("valid JWT-SVID: %d %s", resp.StatusCode, body)
	}
	up := e.upstream.last()
	if up.Header.Get("Authorization") != "" {
		t.Error("the JWT-SVID was forwarded upstream")
	}
	if up.Header.Get("X-Warden-Spiffe-Id") != readerID.String() {
		t.Errorf("identity upstream = %q", up.Header.Get("X-Warden-Spiffe-Id"))
	}
	wrongAud, _ := e.dev.CA.IssueJWT(readerID, []string{"someone-else"}, devca.JWTOptions{})
	expired, _ := e.dev.CA.IssueJWT(readerID, []string{"warden"}, devca.JWTOptions{IssuedAt: time.Now().Add(-2 * time.Hour), TTL: time.Minute})
	for name, tok := range map[string]string{"missing": "", "wrong audience": wrongAud, "expired": expired, "garbage": "a.b.c", "alg none": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzcGlmZmU6Ly93YXJkZW4udGVzdC9hZ2VudC9yZWFkZXIiLCJhdWQiOiJ3YXJkZW4ifQ."} {
		resp, body := call(tok)
		if resp.StatusCode != 401 || errCode(t, body) != "unauthenticated" {
			t.Errorf("%s: %d %s, want 401 unauthenticated", name, resp.StatusCode, body)
		}
		if resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate", name)
		}
	}
	// The JWT listener does not accept an mTLS-only caller without a token... but a
	// presented client certificate is still verified and is enough.
	resp2, err := e.clients["reader"].Get(e.jwtURL + "/docs")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != 200 {
		t.Errorf("client certificate on the JWT listener: %d", resp2.StatusCode)
	}
}

// TestRotationUnderLoad rotates Warden's own SVID files while agents keep
// calling through fresh and kept-alive connections: no request may fail, and
// new handshakes must see the new certificate.
func TestRotationUnderLoad(t *testing.T) {
	e := newTestEnv(t, envOpts{})
	stop := make(chan struct{})
	errs := make(chan error, 100)
	var total int64
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			client := e.clients["reader"]
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if w%2 == 1 { // half the workers use a fresh connection each time
					svidClient := e.clients["reader"].Transport.(*http.Transport).Clone()
					client = &http.Client{Transport: svidClient}
				}
				resp, err := client.Get(e.url + "/x")
				if err != nil {
					errs <- err
					return
				}
				b := readAll(resp)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("status %d: %s", resp.StatusCode, b)
					return
				}
				atomic.AddInt64(&total, 1)
			}
		}(w)
	}
	var serials []string
	for i := 0; i < 3; i++ {
		time.Sleep(300 * time.Millisecond)
		svid, err := e.dev.Mint("warden", wardenID, "localhost")
		if err != nil {
			t.Fatal(err)
		}
		serials = append(serials, svid.Certificates[0].SerialNumber.String())
	}
	// Wait until a fresh handshake presents the last certificate.
	deadline := time.Now().Add(10 * time.Second)
	for {
		tr := e.clients["reader"].Transport.(*http.Transport).Clone()
		resp, err := (&http.Client{Transport: tr}).Get(e.url + "/x")
		if err == nil {
			resp.Body.Close()
			if resp.TLS != nil && resp.TLS.PeerCertificates[0].SerialNumber.String() == serials[len(serials)-1] {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("new handshakes never presented the rotated SVID")
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("request failed during rotation: %v", err)
	}
	if atomic.LoadInt64(&total) < 20 {
		t.Errorf("only %d requests ran during rotation", total)
	}
}

func TestRateLimitObligation(t *testing.T) {
	e := newTestEnv(t, envOpts{})
	for i := 0; i < 2; i++ {
		resp, body := e.do("limited", "GET", "/x", "")
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
		}
		if resp.Header.Get("X-Ratelimit-Limit-Requests") != "2" {
			t.Errorf("limit header = %q", resp.Header.Get("X-Ratelimit-Limit-Requests"))
		}
	}
	resp, body := e.do("limited", "GET", "/x", "")
	if resp.StatusCode != 429 || errCode(t, body) != "rate_limited" {
		t.Fatalf("third request: %d %s, want 429 rate_limited", resp.StatusCode, body)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	if e.upstream.count() != 2 {
		t.Errorf("upstream saw %d requests, want 2", e.upstream.count())
	}
	// Other identities have their own budget.
	if resp, _ := e.do("reader", "GET", "/x", ""); resp.StatusCode != 200 {
		t.Errorf("reader limited by limited's budget: %d", resp.StatusCode)
	}
}

// TestExpiredOnKeptAliveConnection: a connection opened with a valid SVID
// must stop working once that SVID expires, although the handshake is not
// repeated.
func TestExpiredOnKeptAliveConnection(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newTestEnv(t, envOpts{gwOpts: Options{Now: clock}})
	short, err := e.dev.CA.IssueX509(readerID, devca.X509Options{TTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e.clients["short"] = e.dev.Client(short, wardenID)
	if resp, _ := e.do("short", "GET", "/x", ""); resp.StatusCode != 200 {
		t.Fatalf("fresh SVID: %d", resp.StatusCode)
	}
	mu.Lock()
	now = now.Add(time.Hour)
	mu.Unlock()
	resp, body := e.do("short", "GET", "/x", "")
	if resp.StatusCode != 401 || errCode(t, body) != "unauthenticated" {
		t.Fatalf("expired SVID on a kept-alive connection: %d %s", resp.StatusCode, body)
	}
}

// unknownRevocations cannot say whether anyone is revoked (e.g. Redis lost
// for longer than the staleness bound).
type unknownRevocations struct{}

func (unknownRevocations) Lookup(string) (revoke.Entry, bool, error) {
	return revoke.Entry{}, false, revoke.ErrStale
}
func (unknownRevocations) Revoke(context.Context, revoke.Entry) error   { return revoke.ErrStale }
func (unknownRevocations) Unrevoke(context.Context, string) error       { return revoke.ErrStale }
func (unknownRevocations) List(context.Context) ([]revoke.Entry, error) { return nil, revoke.ErrStale }
func (unknownRevocations) Subscribe(func(revoke.Entry, bool)) func()    { return func() {} }

func TestUnknownRevocationStateFailsClosed(t *testing.T) {
	e := newTestEnv(t, envOpts{gwOpts: Options{Revocations: unknownRevocations{}}})
	resp, body := e.do("writer", "GET", "/x", "")
	if resp.StatusCode != http.StatusServiceUnavailable || errCode(t, body) != "revocation_unavailable" {
		t.Fatalf("got %d %s, want 503 revocation_unavailable", resp.StatusCode, body)
	}
	if e.upstream.count() != 0 {
		t.Fatal("forwarded although nobody could say whether the caller is revoked")
	}
}

// TestQueryDecidedAndForwardedCanonical: policy sees the parsed query
// (input.request.query), the upstream gets its canonical encoding, and an
// ambiguous query never reaches the upstream.
func TestQueryDecidedAndForwardedCanonical(t *testing.T) {
	e := newTestEnv(t, envOpts{policy: `package warden.authz
decision := {"allow": true, "reasons": ["ok"], "obligations": {}} if {
	input.request.query.limit == ["5"]
	not input.request.query.admin
} else := {"allow": false, "reasons": ["query"], "obligations": {}}
`})
	resp, body := e.do("reader", "GET", "/items?limit=5&after=x%20y", "")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if got := e.upstream.last().URL.RawQuery; got != "after=x%20y&limit=5" {
		t.Errorf("upstream query %q, want the canonical form", got)
	}
	if resp, _ := e.do("reader", "GET", "/items?limit=5&admin=1", ""); resp.StatusCode != 403 {
		t.Errorf("policy did not see the query: %d", resp.StatusCode)
	}
	before := e.upstream.count()
	for _, q := range []string{"limit=5;admin=1", "limit=%zz", "limit=5%00"} {
		if resp, _ := e.do("reader", "GET", "/items?"+q, ""); resp.StatusCode != 400 {
			t.Errorf("%q: status %d, want 400", q, resp.StatusCode)
		}
	}
	if e.upstream.count() != before {
		t.Error("an ambiguous query reached the upstream")
	}
}
