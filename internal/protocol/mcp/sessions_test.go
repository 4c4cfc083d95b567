package mcp

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestPaginationFiltered: a server with a small page size; filtering applies
// to every page, short pages keep nextCursor, and the client's iterator
// sees exactly the allowed tools.
func TestPaginationFiltered(t *testing.T) {
	for _, jsonResp := range []bool{false, true} {
		t.Run(fmt.Sprint("json=", jsonResp), func(t *testing.T) {
			counts := &toolCounts{}
			s := mcp.NewServer(&mcp.Implementation{Name: "up", Version: "1"}, &mcp.ServerOptions{PageSize: 3})
			var want []string
			for i := range 10 {
				name := fmt.Sprintf("tool_%02d", i)
				addPathTool(s, counts, name, "d")
				if i%3 != 0 {
					want = append(want, name)
				}
			}
			up, _ := startUpstream(t, s, false, jsonResp)
			p := mustNew(t, nil, nil)
			var rules []rule
			for i := 0; i < 10; i += 3 {
				rules = append(rules, rule{op: "tools/call", tool: fmt.Sprintf("tool_%02d", i), allow: false})
			}
			rules = append(rules, rule{peer: alice, allow: true})
			h := newHarness(t, p, up.URL, rules...)
			cs := connect(t, h.srv.URL, alice, Rev20251125, nil)
			defer cs.Close()
			if got := toolNames(t, cs); !slices.Equal(got, want) {
				t.Fatalf("tools %v, want %v", got, want)
			}
			// 10 tools in pages of 3: 4 pages, each filtered in one batch.
			h.eventually(t, "listed=6 hidden=4", func(as []map[string]any) bool {
				var listed, hidden int
				for _, a := range as {
					if a["method"] == "tools/list" {
						listed += a["listed"].(int)
						hidden += a["hidden"].(int)
					}
				}
				return listed == 6 && hidden == 4
			})
		})
	}
}

// TestSessionHijack: a session created by alice cannot be used by bob, even
// with the exact id; bob's attempt is refused, audited, and never reaches
// the server; alice's session keeps working.
func TestSessionHijack(t *testing.T) {
	counts := &toolCounts{}
	up, cnt := startUpstream(t, newSDKServer(counts, nil), false, true)
	p := mustNew(t, nil, nil)
	h := newHarness(t, p, up.URL, rule{allow: true})
	cs := connect(t, h.srv.URL, alice, Rev20250618, nil)
	defer cs.Close()
	sid := cs.ID()
	if sid == "" {
		t.Fatal("no session")
	}
	before := cnt.count()
	body := `{"jsonrpc":"2.0","id":99,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"/x"}}}`
	st, resp, _ := rawPost(t, h.srv.URL, bob, map[string]string{hdrSession: sid, hdrVersion: Rev20250618}, body)
	if st != http.StatusForbidden || !strings.Contains(resp, `"reason":"session_forbidden"`) || !strings.Contains(resp, `"id":99`) {
		t.Fatalf("hijack: %d %s", st, resp)
	}
	if cnt.count() != before || counts.get("write_file") != 0 {
		t.Fatalf("upstream saw the hijack attempt")
	}
	// An identity-less request (gateway bug) is refused the same way.
	st, _, _ = rawPost(t, h.srv.URL, "", map[string]string{hdrSession: sid, hdrVersion: Rev20250618}, body)
	if st != http.StatusForbidden {
		t.Fatalf("no identity: %d", st)
	}
	// The GET stream and DELETE are bound too.
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		req, _ := http.NewRequest(m, h.srv.URL, nil)
		req.Header.Set(hdrSession, sid)
		req.Header.Set("Accept", "text/event-stream")
		r, err := peerClient(bob).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusForbidden {
			t.Fatalf("%s by bob: %d", m, r.StatusCode)
		}
	}
	if cnt.count() != before {
		t.Fatalf("upstream saw bob's GET/DELETE")
	}
	if txt, err := callText(cs, "write_file", "/y"); err != nil || txt != "write_file:/y" {
		t.Fatalf("alice after hijack attempt: %q %v", txt, err)
	}
}

// fakeClock is an injected clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestSessionTTL: an idle session expires (404: the client must initialize
// again) without the server being asked.
func TestSessionTTL(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	up, cnt := startUpstream(t, newSDKServer(&toolCounts{}, nil), false, true)
	p := mustNew(t, map[string]any{"session_ttl": "10m"}, clk.now)
	h := newHarness(t, p, up.URL, rule{allow: true})
	cs := connect(t, h.srv.URL, alice, Rev20251125, nil)
	defer cs.Close()
	clk.add(9 * time.Minute)
	if _, err := callText(cs, "write_file", "/a"); err != nil {
		t.Fatalf("within TTL: %v", err)
	}
	clk.add(11 * time.Minute)
	before := cnt.count()
	st, body, _ := rawPost(t, h.srv.URL, alice, map[string]string{hdrSession: cs.ID(), hdrVersion: Rev20251125}, `{"jsonrpc":"2.0","id":5,"method":"ping"}`)
	if st != http.StatusNotFound || !strings.Contains(body, CodeSessionUnknown) {
		t.Fatalf("expired: %d %s", st, body)
	}
	if cnt.count() != before {
		t.Fatal("upstream saw a request on an expired session")
	}
	if p.Sessions().Len() != 0 {
		t.Fatal("expired binding kept")
	}
}

// TestSamplingDenied: a server→client sampling request on the POST stream
// is authorized as its own call; denied, it is dropped from the stream
// (the client never sees it) and audited; allowed, it goes through and the
// client's answer is accepted because Warden saw the server ask.
func TestSamplingDenied(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(fmt.Sprint("allow=", allow), func(t *testing.T) {
			s := mcp.NewServer(&mcp.Implementation{Name: "up", Version: "1"}, nil)
			mcp.AddTool(s, &mcp.Tool{Name: "summarize"}, func(ctx context.Context, req *mcp.CallToolRequest, in pathIn) (*mcp.CallToolResult, any, error) {
				ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				defer cancel()
				res, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{MaxTokens: 10,
					Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "hi"}}}})
				out := "no sampling"
				if err == nil {
					out = "sampled:" + res.Content.(*mcp.TextContent).Text
				}
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: out}}}, nil, nil
			})
			up, _ := startUpstream(t, s, false, false)
			p := mustNew(t, nil, nil)
			h := newHarness(t, p, up.URL, rule{op: "sampling/createMessage", direction: "server_to_client", allow: allow}, rule{allow: true})
			var sampled int
			var mu sync.Mutex
			cs := connect(t, h.srv.URL, alice, Rev20251125, &mcp.ClientOptions{
				CreateMessageHandler: func(ctx context.Context, r *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
					mu.Lock()
					sampled++
					mu.Unlock()
					return &mcp.CreateMessageResult{Model: "m", Role: "assistant", Content: &mcp.TextContent{Text: "ok"}}, nil
				}})
			defer cs.Close()
			txt, err := callText(cs, "summarize", "")
			if err != nil {
				t.Fatal(err)
			}
			want, wantN := "no sampling", 0
			if allow {
				want, wantN = "sampled:ok", 1
			}
			mu.Lock()
			defer mu.Unlock()
			if txt != want || sampled != wantN {
				t.Fatalf("result %q sampled %d, want %q %d", txt, sampled, want, wantN)
			}
			h.eventually(t, "server messages", func(as []map[string]any) bool {
				var dropped, passed int
				for _, a := range as {
					if n, ok := a["server_dropped"].(int); ok {
						dropped += n
					}
					if n, ok := a["server_messages"].(int); ok {
						passed += n
					}
				}
				if allow {
					return passed > 0 && dropped == 0
				}
				return dropped > 0 // the server's later notifications/cancelled may pass
			})
		})
	}
}

// TestParamHeaders2026: a tool whose input schema mirrors an argument into
// Mcp-Param-Region (x-mcp-header). The SDK client sets the header from the
// list it saw through Warden and the call passes; a request whose header
// disagrees with the body is refused before the server sees it.
func TestParamHeaders2026(t *testing.T) {
	s := mcp.NewServer(&mcp.Implementation{Name: "up", Version: "1"}, nil)
	var ran int
	var mu sync.Mutex
	s.AddTool(&mcp.Tool{Name: "deploy", InputSchema: map[string]any{
		"type": "object",
		"properties": map[string]any{
			"region": map[string]any{"type": "string", "x-mcp-header": "Region"},
			"count":  map[string]any{"type": "integer"},
		},
	}}, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		mu.Lock()
		ran++
		mu.Unlock()
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil
	})
	up, cnt := startUpstream(t, s, true, true)
	p := mustNew(t, nil, nil)
	h := newHarness(t, p, up.URL, rule{allow: true})
	cs := connect(t, h.srv.URL, alice, Rev20260728, nil)
	defer cs.Close()
	if cs.InitializeResult().ProtocolVersion != Rev20260728 {
		t.Skipf("negotiated %s", cs.InitializeResult().ProtocolVersion)
	}
	if got := toolNames(t, cs); !slices.Equal(got, []string{"deploy"}) {
		t.Fatalf("tools %v", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "deploy", Arguments: map[string]any{"region": "eu-west-1", "count": 2}}); err != nil {
		t.Fatalf("call with mirrored header: %v", err)
	}
	before := cnt.count()
	body := `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"deploy","arguments":{"region":"eu-west-1"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`
	hdr := map[string]string{hdrVersion: Rev20260728, hdrMethod: "tools/call", hdrName: "deploy"}
	for name, v := range map[string]string{"mismatch": "us-east-1", "missing": ""} {
		hdr["Mcp-Param-Region"] = v
		st, resp, _ := rawPost(t, h.srv.URL, alice, hdr, body)
		if st != 400 || !strings.Contains(resp, CodeHeaderMismatch) {
			t.Fatalf("%s: %d %s", name, st, resp)
		}
	}
	if cnt.count() != before {
		t.Fatal("upstream saw a mismatched request")
	}
	mu.Lock()
	defer mu.Unlock()
	if ran != 1 {
		t.Fatalf("tool ran %d times", ran)
	}
}
