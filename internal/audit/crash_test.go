package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wardenhq/warden/internal/config"
)

// crashEnv makes TestStrictCrashChild run as the gateway stand-in.
const crashEnv = "WARDEN_AUDIT_CRASH_DIR"

var crashCfg = config.Audit{Path: "audit.jsonl", Mode: "strict", RotateBytes: 32 << 10}

// TestStrictCrashChild plays the gateway in strict mode: Append the
// decision, then "forward" by recording the request id in a second file
// (write + fsync). It runs until the parent SIGKILLs it.
func TestStrictCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("helper process for TestStrictCrash")
	}
	l, err := Open(crashCfg, dir, nil, nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(3)
	}
	fwd, err := os.OpenFile(filepath.Join(dir, "forwarded"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
	// Never outlive a parent that died before killing us.
	time.AfterFunc(time.Minute, func() { os.Exit(4) })
	pid := os.Getpid()
	var mu sync.Mutex
	for w := range 4 {
		go func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("p%d-w%d-%d", pid, w, i)
				if err := l.Append(context.Background(), &Record{Event: EventDecision, RequestID: id, Decision: DecisionAllow}); err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(3)
				}
				mu.Lock()
				_, err := fwd.WriteString(id + "\n")
				if err == nil {
					err = fwd.Sync()
				}
				mu.Unlock()
				if err != nil {
					fmt.Fprintln(os.Stderr, "child forward:", err)
					os.Exit(3)
				}
			}
		}()
	}
	select {}
}

// TestStrictCrash SIGKILLs a strict-mode writer under load, twice (the
// second run resumes the chain the first left behind), then checks that
// every request marked forwarded has its audit record and that the chain
// verifies after Open's tail repair.
func TestStrictCrash(t *testing.T) {
	dir := t.TempDir()
	fwdPath := filepath.Join(dir, "forwarded")
	for round := range 3 {
		before := countLines(fwdPath)
		var stderr bytes.Buffer
		cmd := exec.Command(os.Args[0], "-test.run=^TestStrictCrashChild$")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir)
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for countLines(fwdPath) < before+300 && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child ended with %v, not by SIGKILL: %s", round, err, stderr.String())
		}
	}

	l, err := Open(crashCfg, dir, nil, nil, nil)
	if err != nil {
		t.Fatalf("Open after crash: %v", err)
	}
	l.Close()
	rep := mustVerify(t, dir)
	audited := map[string]bool{}
	for _, r := range records(t, dir) {
		if id, ok := r["request_id"].(string); ok {
			audited[id] = true
		}
	}
	b, err := os.ReadFile(fwdPath)
	if err != nil {
		t.Fatal(err)
	}
	fwd := strings.Split(string(b), "\n")
	fwd = fwd[:len(fwd)-1] // the last element is "" or a torn id
	missing := 0
	for _, id := range fwd {
		if !audited[id] {
			missing++
			if missing < 5 {
				t.Errorf("request %s was forwarded without an audit record", id)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d forwarded requests have no audit record", missing, len(fwd))
	}
	t.Logf("%d forwarded, %d audit records in %d files, all forwarded audited", len(fwd), rep.Records, len(rep.Files))
}

func countLines(p string) int {
	b, _ := os.ReadFile(p)
	return bytes.Count(b, []byte{'\n'})
}
