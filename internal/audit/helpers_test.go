package audit

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wardenhq/warden/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// stepClock is a deterministic clock advancing 1ms per reading.
func stepClock() func() time.Time {
	var n atomic.Int64
	return func() time.Time { return t0.Add(time.Duration(n.Add(1)) * time.Millisecond) }
}

// openLog opens a log at dir/audit.jsonl; mut adjusts the config.
func openLog(t testing.TB, dir string, mut func(*config.Audit), o Options) *Log {
	t.Helper()
	cfg := config.Audit{Path: "audit.jsonl", Mode: "strict", RotateBytes: -1}
	if mut != nil {
		mut(&cfg)
	}
	if o.Now == nil {
		o.Now = stepClock()
	}
	l, err := OpenWith(cfg, dir, o)
	if err != nil {
		t.Fatalf("OpenWith: %v", err)
	}
	return l
}

// sample is a deterministic record: even i a decision, odd i its outcome.
func sample(i int) *Record {
	id := "req-" + string(rune('a'+i%26)) + strings.Repeat("x", i%3)
	r := &Record{
		Time:       t0.Add(time.Duration(i) * time.Second),
		RequestID:  id,
		SpiffeID:   "spiffe://warden.test/agent/support",
		AuthMethod: "mtls",
		Listener:   "agents",
		Route:      "openai/v1",
		Backend:    "openai",
		Kind:       "openai",
	}
	if i%2 == 0 {
		r.Event = EventDecision
		r.Resource = map[string]any{"model": "gpt-4o-mini", "backend": "openai", "kind": "openai"}
		r.Action = "invoke"
		r.Operation = "chat.completions"
		r.Decision = DecisionAllow
		r.Reasons = []string{"model allowed"}
	} else {
		r.Event = EventOutcome
		r.Status = 200
		r.LatencyMS = 812.25
		r.BytesIn = 512
		r.BytesOut = 2048
		r.Protocol = map[string]any{"provider": "openai", "input_tokens": int64(120), "output_tokens": int64(48)}
	}
	return r
}

// appendN appends sample(0..n-1) one by one.
func appendN(t testing.TB, l *Log, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := l.Append(context.Background(), sample(i)); err != nil {
			t.Fatalf("Append(%d): %v", i, err)
		}
	}
}

func readLines(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func writeLines(t testing.TB, path string, lines []string) {
	t.Helper()
	s := strings.Join(lines, "\n")
	if len(lines) > 0 {
		s += "\n"
	}
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustVerify(t testing.TB, paths ...string) Report {
	t.Helper()
	rep, err := Verify(paths...)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if rep.Problem != nil {
		t.Fatalf("Verify: %s", rep.String())
	}
	return rep
}

// faultFile is the live file with switchable failures, standing in for a
// full disk or a failing device.
type faultFile struct {
	*os.File
	failWrite *atomic.Bool
	failSync  *atomic.Bool
	// gate, when non-nil, blocks every Write until it can receive.
	gate chan struct{}
	// writing, when non-nil, is sent on as each Write begins.
	writing chan struct{}
	// syncs counts successful fsyncs, when non-nil.
	syncs *atomic.Int64
}

func (f *faultFile) Write(p []byte) (int, error) {
	if f.writing != nil {
		f.writing <- struct{}{}
	}
	if f.gate != nil {
		<-f.gate
	}
	if f.failWrite != nil && f.failWrite.Load() {
		// A full disk typically takes part of the write.
		n, _ := f.File.Write(p[:len(p)/2])
		return n, syscall.ENOSPC
	}
	return f.File.Write(p)
}

func (f *faultFile) Sync() error {
	if f.failSync != nil && f.failSync.Load() {
		return syscall.EIO
	}
	if f.syncs != nil {
		f.syncs.Add(1)
	}
	return f.File.Sync()
}

func rotatedName(dir string, seq uint64) string {
	return filepath.Join(dir, fmt.Sprintf("audit.jsonl.%0*d", rotatedDigits, seq))
}
