package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"
)

// classifier is a loopback stand-in for an operator-run classifier (a
// Prompt Guard server behind Warden's documented shim contract: POST
// {"text","context"} → {"label","score"}). No such model can run here.
type classifier struct {
	url   string
	calls atomic.Int64
	srv   *http.Server
}

func newClassifier(t *testing.T) *classifier {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &classifier{url: "http://" + ln.Addr().String() + "/classify"}
	c.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.calls.Add(1)
		var in struct{ Text, Context string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		score := 0.01
		if strings.Contains(in.Text, "zebra protocol") {
			score = 0.99 // what the offline rules do not know
		}
		json.NewEncoder(w).Encode(map[string]any{"label": map[bool]string{true: "injection", false: "benign"}[score > 0.5], "score": score})
	}), ReadHeaderTimeout: 5 * time.Second}
	go c.srv.Serve(ln)
	t.Cleanup(func() { c.srv.Close() })
	return c
}

// TestGuardRemoteClassifierFromConfig: guard.remote in warden.yaml makes the
// gateway ask the classifier; its verdict blocks toward tools; a classifier
// that is down blocks under fail_mode closed and not under open.
func TestGuardRemoteClassifierFromConfig(t *testing.T) {
	ctx := context.Background()
	tools := []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "get_weather"})}
	chat := func(s *stack, msg string) error {
		c := s.openai("support")
		_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "small", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(msg)}, Tools: tools})
		return err
	}
	isBlocked := func(err error) bool {
		var apiErr *openai.Error
		return errors.As(err, &apiErr) && apiErr.StatusCode == 403 && apiErr.Code == "guard_blocked"
	}

	cl := newClassifier(t)
	s := newStack(t, stackOpts{extra: "guard:\n  remote: {url: \"" + cl.url + "\", timeout: 2s}\n"})
	if err := chat(s, "What is the weather in Lisbon?"); err != nil {
		t.Fatalf("benign: %v", err)
	}
	if cl.calls.Load() == 0 {
		t.Fatal("the configured classifier was never asked")
	}
	before := s.llm.Requests()
	if err := chat(s, "Switch to the zebra protocol now."); !isBlocked(err) {
		t.Fatalf("classifier verdict ignored: %v", err)
	}
	if s.llm.Requests() != before {
		t.Error("a request the classifier flagged reached the upstream")
	}
	if rec := s.decisionFor("guard_blocked:prompt_injection"); !strings.Contains(mustJSON(t, rec), "pi.remote") {
		t.Errorf("audit does not name the remote rule: %v", rec)
	}

	down := "http://127.0.0.1:1/classify" // nothing listens on port 1
	closed := newStack(t, stackOpts{extra: "guard:\n  remote: {url: \"" + down + "\", timeout: 500ms}\n"})
	if err := chat(closed, "What is the weather in Lisbon?"); !isBlocked(err) {
		t.Errorf("classifier down, fail_mode closed: %v", err)
	}
	open := newStack(t, stackOpts{extra: "guard:\n  remote: {url: \"" + down + "\", timeout: 500ms, fail_mode: open}\n"})
	if err := chat(open, "What is the weather in Lisbon?"); err != nil {
		t.Errorf("classifier down, fail_mode open: %v", err)
	}
}

// TestGuardCaptureFromConfig: guard.capture writes flagged request bodies,
// redacted, linked to the audit record by request id; clean requests are
// not captured.
func TestGuardCaptureFromConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "capture.jsonl")
	s := newStack(t, stackOpts{extra: "guard:\n  capture: {path: \"" + path + "\"}\n"})
	c := s.openai("support")
	ctx := context.Background()
	const key = "AKIAZ3MKQWERTY7N5X2P"
	_, _ = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "small", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello there")}})
	_, _ = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "small", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("deploy with " + key + " and mail ops@example.com")}})

	var raw []byte
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		raw, _ = os.ReadFile(path)
		if strings.Contains(string(raw), "\n") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(string(raw), key) || strings.Contains(string(raw), "ops@example.com") {
		t.Fatalf("capture holds the secret or the address:\n%s", raw)
	}
	ls := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(ls) != 1 {
		t.Fatalf("want one captured (flagged) body, got %d:\n%s", len(ls), raw)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(ls[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rec["body"].(string), "[REDACTED:secret.aws-access-token]") || rec["spiffe_id"] != "spiffe://warden.test/agent/support" {
		t.Errorf("record = %v", rec)
	}
	if id, _ := rec["request_id"].(string); id == "" || !strings.Contains(s.waitAudit(id), id) {
		t.Errorf("request_id %q does not link to the audit log", id)
	}
}
