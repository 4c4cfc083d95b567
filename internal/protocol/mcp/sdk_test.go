package mcp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type pathIn struct {
	Path string `json:"path"`
}

// toolCounts counts tool handler invocations: what the upstream executed.
type toolCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *toolCounts) inc(name string) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[name]++
	c.mu.Unlock()
}

func (c *toolCounts) get(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[name]
}

func addPathTool(s *mcp.Server, counts *toolCounts, name, desc string) {
	mcp.AddTool(s, &mcp.Tool{Name: name, Description: desc}, func(ctx context.Context, req *mcp.CallToolRequest, in pathIn) (*mcp.CallToolResult, any, error) {
		counts.inc(name)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name + ":" + in.Path}}}, nil, nil
	})
}

func newSDKServer(counts *toolCounts, opts *mcp.ServerOptions) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "upstream", Version: "v1"}, opts)
	addPathTool(s, counts, "read_file", "Read a file.")
	addPathTool(s, counts, "write_file", "Write a file.")
	addPathTool(s, counts, "delete_all", "Delete everything.")
	return s
}

// aliceRules: delete_all is never allowed; read_file only under /data/;
// alice may do anything else; everybody else nothing.
var aliceRules = []rule{
	{op: "tools/call", tool: "delete_all", allow: false},
	{op: "tools/call", tool: "read_file", argKey: "path", argPrefix: "/data/", allow: true},
	{op: "tools/call", tool: "read_file", allow: false},
	{peer: alice, allow: true},
}

func startUpstream(t testing.TB, s *mcp.Server, stateless, jsonResp bool) (*httptest.Server, *counter) {
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{
		Stateless: stateless, JSONResponse: jsonResp, SessionTimeout: time.Minute,
	})
	c := &counter{next: h}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return srv, c
}

func connect(t testing.TB, url, peer, version string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	cl := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "v1"}, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cs, err := cl.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: peerClient(peer), MaxRetries: -1},
		&mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect %s: %v", version, err)
	}
	return cs
}

func toolNames(t testing.TB, cs *mcp.ClientSession) []string {
	t.Helper()
	var names []string
	for tool, err := range cs.Tools(context.Background(), nil) {
		if err != nil {
			t.Fatalf("list tools: %v", err)
		}
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

func callText(cs *mcp.ClientSession, name, path string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: map[string]any{"path": path}})
	if err != nil {
		return "", err
	}
	if len(res.Content) == 0 {
		return "", errors.New("no content")
	}
	return res.Content[0].(*mcp.TextContent).Text, nil
}

func wantDenied(t testing.TB, err error, reason string) {
	t.Helper()
	var we *jsonrpc.Error
	if !errors.As(err, &we) {
		t.Fatalf("want a JSON-RPC error %s, got %v", reason, err)
	}
	if !strings.Contains(string(we.Data), `"`+reason+`"`) {
		t.Fatalf("want reason %s in error data, got code %d data %s", reason, we.Code, we.Data)
	}
}

// TestGoSDKRevisions runs the official Go SDK client and server through the
// harness in every revision and server mode: list filtering, argument
// constraints, denials answered with the request id, sessions bound and
// ended.
func TestGoSDKRevisions(t *testing.T) {
	modes := []struct {
		name            string
		stateless, json bool
	}{{"stateful-sse", false, false}, {"stateful-json", false, true}, {"stateless-json", true, true}, {"stateless-sse", true, false}}
	for _, v := range []string{Rev20250326, Rev20250618, Rev20251125, Rev20260728} {
		for _, m := range modes {
			t.Run(v+"/"+m.name, func(t *testing.T) {
				counts := &toolCounts{}
				up, _ := startUpstream(t, newSDKServer(counts, nil), m.stateless, m.json)
				p := mustNew(t, nil, nil)
				h := newHarness(t, p, up.URL, aliceRules...)
				cs := connect(t, h.srv.URL, alice, v, nil)

				if got, want := toolNames(t, cs), []string{"read_file", "write_file"}; !slices.Equal(got, want) {
					t.Fatalf("tools = %v, want %v", got, want)
				}
				if txt, err := callText(cs, "read_file", "/data/a"); err != nil || txt != "read_file:/data/a" {
					t.Fatalf("allowed call: %q %v", txt, err)
				}
				_, err := callText(cs, "read_file", "/etc/passwd")
				wantDenied(t, err, "policy_denied")
				_, err = callText(cs, "delete_all", "/")
				wantDenied(t, err, "policy_denied")
				if n := counts.get("read_file"); n != 1 {
					t.Errorf("upstream ran read_file %d times, want 1", n)
				}
				if n := counts.get("delete_all"); n != 0 {
					t.Errorf("upstream ran delete_all %d times, want 0", n)
				}
				// The session survives denials.
				if txt, err := callText(cs, "write_file", "/x"); err != nil || txt != "write_file:/x" {
					t.Fatalf("call after denial: %q %v", txt, err)
				}
				negotiated := cs.InitializeResult().ProtocolVersion
				t.Logf("negotiated %s", negotiated)
				stateful := !m.stateless && negotiated != Rev20260728
				if got := p.Sessions().Len(); stateful != (got == 1) {
					t.Errorf("bound sessions = %d, stateful %v", got, stateful)
				}
				if stateful && cs.ID() == "" {
					t.Errorf("no session id on a stateful server")
				}
				if err := cs.Close(); err != nil && stateful {
					t.Logf("close: %v", err)
				}
				if stateful {
					waitFor(t, func() bool { return p.Sessions().Len() == 0 }, "DELETE to end the session binding")
				}
			})
		}
	}
}

func waitFor(t testing.TB, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var _ = fmt.Sprint
