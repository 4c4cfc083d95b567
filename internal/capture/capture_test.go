package capture

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wardenhq/warden/internal/guard/guardtest"
	"github.com/wardenhq/warden/internal/protocol"
)

// realRedactor is the gateway's redaction: the real detectors.
func realRedactor(t *testing.T) Redactor {
	t.Helper()
	g := guardtest.Guard(t)
	return func(ctx context.Context, text string) (string, []string, bool) {
		return g.Redact(ctx, protocol.GuardUser, text)
	}
}

func newWriter(t *testing.T, cfg Config, r Redactor, o Options) (*Writer, string, *prometheus.Registry) {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "capture.jsonl")
	}
	if cfg.When == "" {
		cfg.When = "flagged"
	}
	if cfg.Sample == 0 {
		cfg.Sample = 1
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	if cfg.MaxFileBytes == 0 {
		cfg.MaxFileBytes = 1 << 20
	}
	reg := prometheus.NewRegistry()
	o.Registerer = reg
	w, err := New(cfg, r, o)
	if err != nil {
		t.Fatal(err)
	}
	return w, cfg.Path, reg
}

func lines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func count(_ *prometheus.Registry, w *Writer, result string) float64 {
	var m dto.Metric
	if err := w.count.WithLabelValues(result).Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

const key = "AKIAZ3MKQWERTY7N5X2P"

// TestCaptureRedactsBeforeWriting: a flagged JSON body holding an AWS key
// written with a JSON escape (invisible to a scan of the raw bytes) and an
// e-mail address is written redacted, string by string, 0600, linked by
// request id; unflagged bodies are not captured.
func TestCaptureRedactsBeforeWriting(t *testing.T) {
	w, path, reg := newWriter(t, Config{}, realRedactor(t), Options{})
	escaped := `\u0041` + key[1:] // "AKIA..." with its first letter escaped
	body := `{"model":"m","messages":[{"role":"user","content":"use ` + escaped + ` and mail jane.doe@example.com"}]}`
	w.Offer(Item{Time: time.Unix(1700000000, 0), RequestID: "r1", SpiffeID: "spiffe://td/agent", Method: "POST", Path: "/v1/chat/completions",
		Decision: "deny", Reasons: []string{"guard_blocked:secret"}, Flagged: true, Body: []byte(body)})
	w.Offer(Item{RequestID: "r2", Flagged: false, Body: []byte(`{"x":"` + key + `"}`)})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if strings.Contains(string(raw), key) || strings.Contains(string(raw), key[1:]) || strings.Contains(string(raw), "jane.doe@example.com") {
		t.Fatalf("capture holds a secret or address:\n%s", raw)
	}
	ls := lines(t, path)
	if len(ls) != 1 || ls[0]["request_id"] != "r1" {
		t.Fatalf("records = %v", ls)
	}
	rec := ls[0]
	if !strings.Contains(rec["body"].(string), "[REDACTED:secret.aws-access-token]") || !strings.Contains(rec["body"].(string), "[REDACTED:pii.email]") {
		t.Errorf("body = %v", rec["body"])
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(rec["body"].(string)), &v); err != nil {
		t.Errorf("a JSON body is no longer JSON after redaction: %v", err)
	}
	if rules := rec["redacted"].([]any); len(rules) != 2 {
		t.Errorf("redacted = %v", rules)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
	if count(reg, w, ResultWritten) != 1 {
		t.Errorf("written = %v", count(reg, w, ResultWritten))
	}
}

// TestCaptureFailsSafe: sampling, an unredactable body, the file cap, the
// queue cap, truncation after redaction and a world-readable file.
func TestCaptureFailsSafe(t *testing.T) {
	t.Run("sampled out", func(t *testing.T) {
		w, path, reg := newWriter(t, Config{When: "all", Sample: 0.5}, realRedactor(t), Options{Rand: func() float64 { return 0.7 }})
		w.Offer(Item{RequestID: "r", Body: []byte("hello")})
		w.Close()
		if len(lines(t, path)) != 0 || count(reg, w, ResultSampledOut) != 1 {
			t.Error("a sampled-out body was written")
		}
	})
	t.Run("unredactable is not written", func(t *testing.T) {
		fail := func(context.Context, string) (string, []string, bool) { return "", nil, false }
		w, path, reg := newWriter(t, Config{When: "all"}, fail, Options{})
		w.Offer(Item{RequestID: "r", Body: []byte(`{"a":"` + key + `"}`)})
		w.Close()
		if len(lines(t, path)) != 0 || count(reg, w, ResultUnredactable) != 1 {
			t.Error("an unredacted body was written")
		}
	})
	t.Run("truncated after redaction", func(t *testing.T) {
		w, path, _ := newWriter(t, Config{When: "all", MaxBodyBytes: 20}, realRedactor(t), Options{})
		w.Offer(Item{RequestID: "r", Body: []byte("key: " + key + " and then a lot more text after it")})
		w.Close()
		ls := lines(t, path)
		if len(ls) != 1 || ls[0]["truncated"] != true || strings.Contains(ls[0]["body"].(string), key[:12]) || len(ls[0]["body"].(string)) > 20 {
			t.Errorf("records = %v", ls)
		}
	})
	t.Run("file full", func(t *testing.T) {
		w, path, reg := newWriter(t, Config{When: "all", MaxFileBytes: 300}, realRedactor(t), Options{})
		for range 5 {
			w.Offer(Item{RequestID: "r", Body: []byte(strings.Repeat("x", 100))})
		}
		w.Close()
		st, _ := os.Stat(path)
		if st.Size() > 300 || count(reg, w, ResultFileFull) == 0 {
			t.Errorf("size %d, file_full %v", st.Size(), count(reg, w, ResultFileFull))
		}
	})
	t.Run("queue full drops the capture, not the caller", func(t *testing.T) {
		release := make(chan struct{})
		slow := func(ctx context.Context, s string) (string, []string, bool) { <-release; return s, nil, true }
		w, _, reg := newWriter(t, Config{When: "all"}, slow, Options{Queue: 1})
		done := make(chan struct{})
		go func() {
			for range 5 {
				w.Offer(Item{RequestID: "r", Body: []byte("x")})
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Offer blocked on a slow writer")
		}
		close(release)
		w.Close()
		if count(reg, w, ResultDropped) < 3 {
			t.Errorf("dropped = %v", count(reg, w, ResultDropped))
		}
	})
	t.Run("world-readable file refused", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "c.jsonl")
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := New(Config{Path: p, When: "all", Sample: 1, MaxBodyBytes: 1, MaxFileBytes: 1}, realRedactor(t), Options{}); err == nil || !strings.Contains(err.Error(), "readable by others") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("no redactor, no writer", func(t *testing.T) {
		if _, err := New(Config{Path: filepath.Join(t.TempDir(), "c"), Sample: 1}, nil, Options{}); err == nil {
			t.Error("a writer without a redactor")
		}
	})
}
