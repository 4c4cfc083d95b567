package guard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClassifier is a stand-in for an operator's Llama Guard / Prompt Guard
// shim: a real HTTP server on loopback speaking the documented JSON shape.
// It calls "injection" anything containing "pwned", and misbehaves on cue.
func fakeClassifier(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req remoteRequest
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || !validContext(req.Context) {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		switch {
		case strings.Contains(req.Text, "slow"):
			time.Sleep(300 * time.Millisecond)
		case strings.Contains(req.Text, "crash"):
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		case strings.Contains(req.Text, "garble"):
			w.Write([]byte(`{"label":`))
			return
		}
		score := 0.02
		label := "benign"
		if strings.Contains(req.Text, "pwned") {
			score, label = 0.97, "injection"
		}
		json.NewEncoder(w).Encode(map[string]any{"label": label, "score": score})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRemoteClassifier(t *testing.T) {
	srv := fakeClassifier(t)
	closed, err := New(Config{Remote: &RemoteConfig{URL: srv.URL, Timeout: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	open, err := New(Config{Remote: &RemoteConfig{URL: srv.URL, Timeout: 100 * time.Millisecond, FailMode: FailOpen}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		s         *Scanner
		text      string
		c         Context
		blocked   bool
		by        string
		hasRemote bool
	}{
		{"offline miss, remote hit", closed, "you have been pwned, obey", ContextUser, true, CategoryPromptInjection, true},
		{"benign", closed, "what time is it?", ContextUser, false, "", false},
		{"response not sent", closed, "pwned", ContextResponse, false, "", false},
		{"timeout fails closed", closed, "slow", ContextUser, true, "remote_unavailable", false},
		{"500 fails closed", closed, "crash", ContextUser, true, "remote_unavailable", false},
		{"garbage fails closed", closed, "garble", ContextUser, true, "remote_unavailable", false},
		{"timeout fails open", open, "slow", ContextUser, false, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.s.Scan(ctx, tc.text, tc.c)
			if r.Blocked != tc.blocked {
				t.Errorf("blocked = %v (%v), want %v", r.Blocked, r.BlockedBy, tc.blocked)
			}
			if tc.by != "" && !containsStr(r.BlockedBy, tc.by) {
				t.Errorf("blocked by %v, want %s", r.BlockedBy, tc.by)
			}
			got := false
			for _, f := range r.Findings {
				got = got || f.Rule == "pi.remote"
			}
			if got != tc.hasRemote {
				t.Errorf("pi.remote finding = %v, want %v", got, tc.hasRemote)
			}
		})
	}
	if _, err := New(Config{Remote: &RemoteConfig{}}); err == nil {
		t.Error("remote without URL accepted")
	}
}

// TestRemoteScanJSONOncePerContext: ScanJSON asks the classifier once per
// context with all of that context's strings, not once per string, and a
// classifier failure under fail mode closed is a blocked leaf even though no
// offline detector found anything.
func TestRemoteScanJSONOncePerContext(t *testing.T) {
	var calls atomic.Int64
	srv := fakeClassifier(t)
	counting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		resp, err := http.Post(srv.URL, "application/json", r.Body)
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(counting.Close)
	s, err := New(Config{Remote: &RemoteConfig{URL: counting.URL, Timeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	doc := `{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello"},{"role":"user","content":"you have been pwned"},{"role":"tool","tool_call_id":"c","content":"21C"}]}`
	leaves, err := s.ScanJSON(context.Background(), []byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 2 { // user and tool_output
		t.Errorf("classifier called %d times, want 2 (one per context)", n)
	}
	blocked := false
	for _, l := range leaves {
		if l.Context == ContextUser && l.Result.Blocked && strings.Contains(fmt.Sprint(l.Result.Findings), "pi.remote") {
			blocked = true
		}
	}
	if !blocked {
		t.Errorf("remote verdict lost: %+v", leaves)
	}

	down, err := New(Config{Remote: &RemoteConfig{URL: "http://127.0.0.1:1/", Timeout: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	leaves, err = down.ScanJSON(context.Background(), []byte(`{"messages":[{"role":"user","content":"hello"}]}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(leaves) != 1 || !leaves[0].Result.Blocked || leaves[0].Result.BlockedBy[0] != "remote_unavailable" {
		t.Errorf("classifier down, fail closed: %+v", leaves)
	}
}

// TestRemoteSeesEveryByte: strings beyond the classifier's max_bytes are
// packed and cut into several calls, so an injection at the end of a long
// history is still classified; text beyond the call cap is over budget.
func TestRemoteSeesEveryByte(t *testing.T) {
	srv := fakeClassifier(t)
	s, err := New(Config{Remote: &RemoteConfig{URL: srv.URL, Timeout: 2 * time.Second, MaxBytes: 2048}})
	if err != nil {
		t.Fatal(err)
	}
	filler := strings.Repeat("the weather is mild and the sea is calm. ", 60) // ~2.4 KiB
	msgs := []string{filler, filler, filler + " you have been pwned"}
	doc, _ := json.Marshal(map[string]any{"messages": []any{
		map[string]any{"role": "user", "content": msgs[0]},
		map[string]any{"role": "user", "content": msgs[1]},
		map[string]any{"role": "user", "content": msgs[2]},
	}})
	leaves, err := s.ScanJSON(context.Background(), doc, "")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range leaves {
		for _, f := range l.Result.Findings {
			found = found || f.Rule == "pi.remote"
		}
	}
	if !found {
		t.Errorf("the injection past the first max_bytes was not classified: %+v", leaves)
	}
	b := remoteBatches(msgs, 1024)
	n := 0
	for _, x := range b {
		if len(x) > 1024 {
			t.Errorf("batch of %d bytes > max", len(x))
		}
		n += len(strings.ReplaceAll(x, "\n\n", ""))
	}
	if n != len(strings.Join(msgs, "")) {
		t.Errorf("batches hold %d bytes of text, want %d", n, len(strings.Join(msgs, "")))
	}

	big := make([]any, 20)
	for i := range big {
		big[i] = map[string]any{"role": "user", "content": filler}
	}
	doc, _ = json.Marshal(map[string]any{"messages": big})
	leaves, err = s.ScanJSON(context.Background(), doc, "")
	if err != nil {
		t.Fatal(err)
	}
	over := false
	for _, l := range leaves {
		over = over || (l.Result.OverBudget && l.Result.Blocked)
	}
	if !over {
		t.Errorf("text beyond %d calls must be over budget and blocked (fail closed): %+v", maxRemoteCalls, leaves)
	}
}
