package gateway

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/devenv"
)

var (
	wardenID   = spiffeid.RequireFromString("spiffe://warden.test/warden")
	adminID    = spiffeid.RequireFromString("spiffe://warden.test/admin")
	upstreamID = spiffeid.RequireFromString("spiffe://warden.test/upstream/app")
	readerID   = spiffeid.RequireFromString("spiffe://warden.test/agent/reader")
	writerID   = spiffeid.RequireFromString("spiffe://warden.test/pipeline/writer")
	strangerID = spiffeid.RequireFromString("spiffe://warden.test/agent/stranger")
	limitedID  = spiffeid.RequireFromString("spiffe://warden.test/agent/limited")
)

const testRoles = `warden:
  bindings:
    spiffe://warden.test/agent/reader: [reader]
    spiffe://warden.test/pipeline/writer: [writer]
    spiffe://warden.test/agent/limited: [limited]
  roles:
    limited:
      permissions:
        - backend: app
          actions: [read]
          obligations:
            limits: {requests_per_minute: 2}
    reader:
      permissions:
        - backend: app
          actions: [read]
    writer:
      permissions:
        - backend: "*"
          actions: ["*"]
`

const testConfig = `identity:
  trust_domain: warden.test
  files:
    dir: svids/warden
    poll_interval: 100ms
  jwt_bundles:
    - trust_domain: warden.test
      file: ca/jwt_bundle.json
listeners:
  - name: data
    address: 127.0.0.1:0
  - name: l7
    address: 127.0.0.1:0
    auth: [jwt]
    jwt_audiences: [warden]
admin:
  address: 127.0.0.1:0
  allowed_ids: [spiffe://warden.test/admin]
backends:
  - name: app
    url: https://%s
    tls:
      spiffe_id: spiffe://warden.test/upstream/app
routes:
  - path_prefix: /
    backend: app
policy:
  paths: %s
  data: [roles.yaml]
  # -race on a shared 2-core machine: the 100ms default would deny (fail closed).
  timeout: 3s
audit:
  path: audit/audit.jsonl
  mode: %s
limits:
  max_body_bytes: 65536
  max_header_bytes: 8192
timeouts:
  shutdown: 5s
  read_header: 1s
  read_body: 1s
`

// testEnv is Warden in front of one upstream, with agents' clients.
type testEnv struct {
	t        testing.TB
	dev      *devenv.Env
	g        *Gateway
	cfg      *config.Config
	url      string
	jwtURL   string
	clients  map[string]*http.Client
	upstream *recorder
	cancel   context.CancelFunc
	done     chan struct{}
}

type envOpts struct {
	auditMode string
	policy    string // Rego source replacing the default library, "" = default
	handler   http.Handler
	gwOpts    Options
}

// recorder is the upstream: it records what reached it.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
	next http.Handler
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req.Clone(context.Background()))
	r.mu.Unlock()
	if r.next != nil {
		r.next.ServeHTTP(w, req)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"ok":true,"caller":%q}`, req.Header.Get("X-Warden-Spiffe-Id"))
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

func (r *recorder) last() *http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		return nil
	}
	return r.reqs[len(r.reqs)-1]
}

func newTestEnv(t testing.TB, o envOpts) *testEnv {
	t.Helper()
	dir := t.TempDir()
	dev, err := devenv.New(dir, spiffeid.RequireTrustDomainFromString("warden.test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dev.Close)
	e := &testEnv{t: t, dev: dev, clients: map[string]*http.Client{}, upstream: &recorder{next: o.handler}}
	if _, err := dev.Mint("warden", wardenID, "localhost"); err != nil {
		t.Fatal(err)
	}
	for name, id := range map[string]spiffeid.ID{"reader": readerID, "writer": writerID, "stranger": strangerID, "admin": adminID, "limited": limitedID} {
		svid, err := dev.Mint(name, id)
		if err != nil {
			t.Fatal(err)
		}
		e.clients[name] = dev.Client(svid, wardenID)
		if name == "writer" {
			// HTTP/1.1 only: upgrade requests cannot be expressed over HTTP/2.
			e.clients["writer-h1"] = &http.Client{Transport: &http.Transport{
				TLSClientConfig: dev.ClientTLS(svid, wardenID),
				TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{},
			}}
		}
	}
	upSVID, err := dev.Mint("upstream", upstreamID, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	addr, err := dev.Serve(upSVID, wardenID, e.upstream)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "roles.yaml"), testRoles)
	paths := "[]"
	if o.policy != "" {
		write(t, filepath.Join(dir, "policy", "authz.rego"), o.policy)
		paths = "[policy]"
	}
	if o.auditMode == "" {
		o.auditMode = "batched"
	}
	cfgPath := filepath.Join(dir, "warden.yaml")
	write(t, cfgPath, fmt.Sprintf(testConfig, addr, paths, o.auditMode))
	e.cfg, err = config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	if o.gwOpts.Logger == nil && os.Getenv("WARDEN_TEST_LOG") != "" {
		o.gwOpts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e.g, err = New(ctx, e.cfg, o.gwOpts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	e.done = make(chan struct{})
	go func() { defer close(e.done); _ = e.g.Run(ctx) }()
	e.url = "https://" + e.g.Addr("data")
	e.jwtURL = "https://" + e.g.Addr("l7")
	t.Cleanup(e.stop)
	return e
}

// stop shuts Warden down and waits for Run to return.
func (e *testEnv) stop() {
	e.cancel()
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
		e.t.Error("gateway did not shut down within 10s")
	}
}

func (e *testEnv) do(client, method, path, body string, hdr ...string) (*http.Response, string) {
	e.t.Helper()
	var rd *strings.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	var req *http.Request
	var err error
	if rd != nil {
		req, err = http.NewRequest(method, e.url+path, rd)
	} else {
		req, err = http.NewRequest(method, e.url+path, nil)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := e.clients[client].Do(req)
	if err != nil {
		e.t.Fatalf("%s %s as %s: %v", method, path, client, err)
	}
	defer resp.Body.Close()
	b := new(strings.Builder)
	_, _ = fmt.Fprint(b, readAll(resp))
	return resp, b.String()
}

func readAll(resp *http.Response) string {
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			return sb.String()
		}
	}
}

func write(t testing.TB, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
