package mcp

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/wardenhq/warden/internal/jsonstrict"
)

// taskUpstream is a small real task-capable MCP endpoint (2025-11-25
// tasks; the Go SDK has none yet): task-augmented tools/call creates a task,
// tasks/get and tasks/result answer for any id, tasks/list lists them all.
func taskUpstream(t *testing.T) (*httptest.Server, *counter) {
	var mu sync.Mutex
	var ids []string
	c := &counter{next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		tree, err := jsonstrict.Parse(b, jsonstrict.Options{})
		if err != nil {
			http.Error(w, "bad", 400)
			return
		}
		m := tree.(map[string]any)
		id := m["id"]
		var result any
		mu.Lock()
		switch m["method"] {
		case "tools/call":
			tid := fmt.Sprintf("task-%d", len(ids)+1)
			ids = append(ids, tid)
			result = map[string]any{"task": map[string]any{"taskId": tid, "status": "working"}}
		case "tasks/get", "tasks/result":
			p := m["params"].(map[string]any)
			result = map[string]any{"taskId": p["taskId"], "status": "completed", "content": []any{map[string]any{"type": "text", "text": "secret output"}}}
		case "tasks/list":
			var ts []any
			for _, x := range ids {
				ts = append(ts, map[string]any{"taskId": x, "status": "working"})
			}
			result = map[string]any{"tasks": ts}
		}
		mu.Unlock()
		out, _ := jsonstrict.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "result": result})
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	})}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return srv, c
}

// TestTaskBinding: a task id is bound to the identity whose tools/call
// created it; another identity cannot fetch its result, and tasks/list
// shows each caller only its own tasks.
func TestTaskBinding(t *testing.T) {
	up, cnt := taskUpstream(t)
	p := mustNew(t, nil, nil)
	h := newHarness(t, p, up.URL, rule{allow: true})
	hdr := map[string]string{hdrVersion: Rev20251125}
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"report","arguments":{},"task":{"ttl":60000}}}`
	if st, body, _ := rawPost(t, h.srv.URL, alice, hdr, call); st != 200 || !strings.Contains(body, "task-1") {
		t.Fatalf("alice task: %d %s", st, body)
	}
	if st, body, _ := rawPost(t, h.srv.URL, bob, hdr, call); st != 200 || !strings.Contains(body, "task-2") {
		t.Fatalf("bob task: %d %s", st, body)
	}
	get := func(peer, id string) (int, string) {
		st, body, _ := rawPost(t, h.srv.URL, peer, hdr, `{"jsonrpc":"2.0","id":2,"method":"tasks/result","params":{"taskId":"`+id+`"}}`)
		return st, body
	}
	if st, body := get(alice, "task-1"); st != 200 || !strings.Contains(body, "secret output") {
		t.Fatalf("owner: %d %s", st, body)
	}
	before := cnt.count()
	for _, tc := range []struct{ peer, id string }{{bob, "task-1"}, {alice, "task-2"}, {alice, "task-99"}} {
		if st, body := get(tc.peer, tc.id); st != 403 || !strings.Contains(body, CodeTaskForbidden) || strings.Contains(body, "secret") {
			t.Fatalf("%s reading %s: %d %s", tc.peer, tc.id, st, body)
		}
	}
	if cnt.count() != before {
		t.Fatal("upstream saw a foreign task request")
	}
	st, body, _ := rawPost(t, h.srv.URL, bob, hdr, `{"jsonrpc":"2.0","id":3,"method":"tasks/list"}`)
	if st != 200 || !strings.Contains(body, "task-2") || strings.Contains(body, "task-1") {
		t.Fatalf("bob's list: %d %s", st, body)
	}
}
