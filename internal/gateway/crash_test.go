package gateway

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wardenhq/warden/internal/audit"
	"github.com/wardenhq/warden/internal/config"
)

// TestCrashChild is the child process of TestStrictAuditSurvivesKill: it
// runs the gateway from the config named in the environment until killed.
func TestCrashChild(t *testing.T) {
	cfgPath := os.Getenv("WARDEN_CRASH_CHILD_CONFIG")
	if cfgPath == "" {
		t.Skip("child process of TestStrictAuditSurvivesKill")
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Run(context.Background()) }()
	addrFile := filepath.Join(filepath.Dir(cfgPath), "addr")
	if err := os.WriteFile(addrFile+".tmp", []byte(g.Addr("data")), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Rename(addrFile+".tmp", addrFile)
	time.Sleep(time.Minute) // killed long before
}

// TestStrictAuditSurvivesKill: with audit mode strict, SIGKILL the gateway
// process in the middle of a load; every request that reached the upstream
// must have its decision record on disk, and the chain must verify once
// Open has repaired a torn tail.
func TestStrictAuditSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	e := newTestEnv(t, envOpts{auditMode: "strict"})
	e.stop() // only the environment (CA, upstream, config) is reused
	cfgPath := filepath.Join(e.dev.Dir, "warden.yaml")

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "WARDEN_CRASH_CHILD_CONFIG="+cfgPath)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var addr []byte
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(e.dev.Dir, "addr"))
		if err == nil && len(b) > 0 {
			addr = b
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("child gateway did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	url := "https://" + string(addr) + "/crash"

	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := e.clients["writer"].Post(url, "application/json", strings.NewReader(`{"n":1}`))
				if err != nil {
					continue // the process is gone
				}
				resp.Body.Close()
			}
		}()
	}
	// Kill once a good number of requests went through.
	for e.upstream.count() < 200 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	close(stop)
	wg.Wait()

	forwarded := map[string]bool{}
	e.upstream.mu.Lock()
	for _, r := range e.upstream.reqs {
		forwarded[r.Header.Get("X-Request-Id")] = true
	}
	e.upstream.mu.Unlock()
	if len(forwarded) < 200 {
		t.Fatalf("only %d requests forwarded before the kill", len(forwarded))
	}

	// Reopen the log as a restarted Warden would: the torn tail, if any, is repaired.
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(cfg.Audit, cfg.Dir(), nil, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	path := cfg.Resolve(cfg.Audit.Path)
	rep, err := audit.Verify(path)
	if err != nil || !rep.OK() {
		t.Fatalf("audit chain after crash: %v %v", err, rep.Problem)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recorded := map[string]bool{}
	for _, line := range strings.Split(string(raw), "\n") {
		var r struct {
			Event     string `json:"event"`
			RequestID string `json:"request_id"`
			Decision  string `json:"decision"`
		}
		if json.Unmarshal([]byte(line), &r) == nil && r.Event == "decision" && r.Decision == "allow" {
			recorded[r.RequestID] = true
		}
	}
	var missing []string
	for id := range forwarded {
		if !recorded[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d forwarded requests have no audit record, e.g. %v", len(missing), len(forwarded), missing[:min(3, len(missing))])
	}
	t.Logf("%d requests forwarded before SIGKILL, all with a decision record on disk", len(forwarded))
}
