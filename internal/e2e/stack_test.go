package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/devenv"
	"github.com/wardenhq/warden/internal/gateway"
	"github.com/wardenhq/warden/internal/protocol/llmtest"
)

var wardenID = spiffeid.RequireFromString("spiffe://warden.test/warden")

// agents are minted for every stack; roles decide what they may do.
var agents = map[string]string{
	"support":  "spiffe://warden.test/agent/support",
	"training": "spiffe://warden.test/pipeline/training",
	"capped":   "spiffe://warden.test/agent/capped",
	"stranger": "spiffe://warden.test/agent/stranger",
	"admin":    "spiffe://warden.test/admin",
}

const baseRoles = `warden:
  bindings:
    spiffe://warden.test/agent/support: [support]
    spiffe://warden.test/pipeline/training: [full]
    spiffe://warden.test/agent/capped: [capped]
  roles:
    support:
      permissions:
        - backend: llm
          actions: [invoke]
          resources: {model: [small]}
        - backend: llm
          actions: [read]
    full:
      permissions:
        - {backend: "*", actions: ["*"]}
    capped:
      permissions:
        - backend: llm
          actions: [invoke]
          resources: {model: [small]}
          obligations:
            limits: {requests_per_minute: 4}
`

type stackOpts struct {
	roles string
	// redis is a redis address shared by replicas ("" = memory).
	redis string
	// dir reuses an existing stack's directory (a second replica).
	dir     string
	llmURL  string
	replica string
	// extra is appended to the config (e.g. a guard section).
	extra string
	// backends and routes are appended to those lists (YAML list items,
	// indented by two spaces).
	backends, routes string
	// reply is the text the LLM stand-in generates (llmtest.Config.Reply).
	reply string
}

// stack is Warden in front of an OpenAI-compatible upstream.
type stack struct {
	t       *testing.T
	dev     *devenv.Env
	g       *gateway.Gateway
	cfg     *config.Config
	url     string
	clients map[string]*http.Client
	llm     *llmtest.Server
	llmURL  string
}

func newStack(t *testing.T, o stackOpts) *stack {
	t.Helper()
	dir := o.dir
	if dir == "" {
		dir = t.TempDir()
	}
	dev, err := devenv.New(dir, spiffeid.RequireTrustDomainFromString("warden.test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dev.Close)
	s := &stack{t: t, dev: dev, clients: map[string]*http.Client{}, llmURL: o.llmURL}
	if _, err := dev.Mint("warden", wardenID, "localhost"); err != nil {
		t.Fatal(err)
	}
	for name, id := range agents {
		svid, err := dev.Mint(name, spiffeid.RequireFromString(id))
		if err != nil {
			t.Fatal(err)
		}
		s.clients[name] = dev.Client(svid, wardenID)
	}
	if s.llmURL == "" {
		up, err := dev.Mint("llm", spiffeid.RequireFromString("spiffe://warden.test/upstream/llm"), "localhost")
		if err != nil {
			t.Fatal(err)
		}
		s.llm, err = llmtest.Start(llmtest.Config{
			Chunks: 8, Models: []string{"small", "large"}, Reply: o.reply,
			TLS: tlsconfig.MTLSServerConfig(up, dev.CA.X509Bundle(), tlsconfig.AuthorizeID(wardenID)),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.llm.Close)
		s.llmURL = s.llm.URL
	}
	roles := o.roles
	if roles == "" {
		roles = baseRoles
	}
	write(t, filepath.Join(dir, "roles.yaml"), roles)
	redis := ""
	if o.redis != "" {
		redis = fmt.Sprintf("redis:\n  address: %s\n  timeout: 2s\nrevocation:\n  store: redis\n", o.redis)
	}
	cfgYAML := fmt.Sprintf(`identity:
  trust_domain: warden.test
  files: {dir: svids/warden}
listeners: [{name: data, address: "127.0.0.1:0"}]
admin:
  address: 127.0.0.1:0
  allowed_ids: [spiffe://warden.test/admin]
backends:
  - name: llm
    kind: openai
    url: %s
    tls: {spiffe_id: "spiffe://warden.test/upstream/llm"}
%sroutes:
  - {path_prefix: /v1/, backend: llm}
%spolicy: {data: [roles.yaml], timeout: 3s}
audit: {path: audit%s/audit.jsonl}
%s%s`, s.llmURL, o.backends, o.routes, o.replica, redis, o.extra)
	cfgPath := filepath.Join(dir, "warden"+o.replica+".yaml")
	write(t, cfgPath, cfgYAML)
	if s.cfg, err = config.Load(cfgPath); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.g, err = gateway.New(ctx, s.cfg, gateway.Options{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("gateway did not stop")
		}
	})
	s.url = "https://" + s.g.Addr("data")
	return s
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// node returns the node binary, or skips (fails under CI) when missing.
func node(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node is required in CI")
		}
		t.Skip("node not installed")
	}
	if _, err := os.Stat(filepath.Join(npmDir(), "node_modules")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("testdata/npm/node_modules missing: run scripts/test.sh (npm ci)")
		}
		t.Skip("npm test dependencies not installed (scripts/test.sh runs npm ci)")
	}
	return p
}

func npmDir() string {
	wd, _ := os.Getwd()
	return filepath.Join(wd, "..", "..", "testdata", "npm")
}

// runNode runs testdata/npm/scripts/script with env and returns its stdout.
func runNode(t *testing.T, script string, env ...string) string {
	t.Helper()
	bin := node(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Scripts live beside node_modules so ESM imports resolve.
	cmd := exec.CommandContext(ctx, bin, filepath.Join(npmDir(), "scripts", script))
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v\nstderr: %s\nstdout: %s", script, err, stderr.String(), out)
	}
	return string(out)
}

// metrics scrapes the admin listener's Prometheus endpoint.
func (s *stack) metrics() string {
	s.t.Helper()
	resp, err := s.clients["admin"].Get("https://" + s.g.Addr("admin") + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return string(b)
}
