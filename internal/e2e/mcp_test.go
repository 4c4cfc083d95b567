package e2e

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

const mcpRoles = `warden:
  bindings:
    spiffe://warden.test/agent/support: [support]
    spiffe://warden.test/pipeline/training: [full]
  roles:
    support:
      permissions:
        - {backend: tools, actions: [read]}
        - backend: tools
          actions: [invoke]
          operations: [tools/call]
          resources: {tool: [search_kb]}
    full:
      permissions:
        - {backend: "*", actions: ["*"]}
`

type searchIn struct {
	Query string `json:"query"`
}

// TestMCPGoSDKThroughGateway: the official Go SDK as client and as server,
// over mTLS through the real gateway (stateful Streamable HTTP sessions).
func TestMCPGoSDKThroughGateway(t *testing.T) {
	srv := sdk.NewServer(&sdk.Implementation{Name: "e2e-tools", Version: "1"}, nil)
	calls := map[string]int{}
	for _, name := range []string{"search_kb", "delete_record"} {
		name := name
		sdk.AddTool(srv, &sdk.Tool{Name: name, Description: name + " tool"},
			func(ctx context.Context, req *sdk.CallToolRequest, in searchIn) (*sdk.CallToolResult, any, error) {
				calls[name]++
				return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: name + ":" + in.Query}}}, nil, nil
			})
	}
	handler := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, nil)

	// Start the stack first to get the dev CA, then serve the MCP upstream on it.
	dir := t.TempDir()
	pre := newStack(t, stackOpts{dir: dir, replica: "-pre"})
	mcpSVID, err := pre.dev.Mint("mcp", spiffeid.RequireFromString("spiffe://warden.test/upstream/mcp"), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	addr, err := pre.dev.Serve(mcpSVID, wardenID, handler)
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, stackOpts{dir: dir, llmURL: pre.llmURL, roles: mcpRoles,
		backends: "  - name: tools\n    kind: mcp\n    url: https://" + addr + "\n    tls: {spiffe_id: \"spiffe://warden.test/upstream/mcp\"}\n",
		routes:   "  - {path_prefix: /mcp, backend: tools}\n",
	})

	connect := func(agent string) *sdk.ClientSession {
		c := sdk.NewClient(&sdk.Implementation{Name: "e2e-agent", Version: "1"}, nil)
		cs, err := c.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: s.url + "/mcp", HTTPClient: s.clients[agent]}, nil)
		if err != nil {
			t.Fatalf("%s: connect through Warden: %v", agent, err)
		}
		t.Cleanup(func() { _ = cs.Close() })
		return cs
	}
	ctx := context.Background()

	support := connect("support")
	tools, err := support.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	if strings.Join(names, ",") != "search_kb" {
		t.Errorf("support sees tools %v, want [search_kb]", names)
	}
	res, err := support.CallTool(ctx, &sdk.CallToolParams{Name: "search_kb", Arguments: map[string]any{"query": "refunds"}})
	if err != nil || res.IsError {
		t.Fatalf("search_kb: %v %+v", err, res)
	}
	_, err = support.CallTool(ctx, &sdk.CallToolParams{Name: "delete_record", Arguments: map[string]any{"query": "x"}})
	var rpcErr interface{ Error() string }
	if err == nil || !errors.As(err, &rpcErr) {
		t.Fatalf("delete_record as support: err %v, want a JSON-RPC error", err)
	}
	if calls["delete_record"] != 0 {
		t.Fatal("a denied tools/call reached the server")
	}

	training := connect("training")
	tools, err = training.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	names = names[:0]
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "delete_record,search_kb" {
		t.Errorf("training sees tools %v", names)
	}
	if _, err := training.CallTool(ctx, &sdk.CallToolParams{Name: "delete_record", Arguments: map[string]any{"query": "x"}}); err != nil {
		t.Fatalf("delete_record as training: %v", err)
	}
	if calls["delete_record"] != 1 {
		t.Errorf("server saw %d delete_record calls, want 1", calls["delete_record"])
	}

	// A session belongs to the identity that created it: support's session
	// id presented by training is refused before the server sees it.
	post := func(agent, session, body string) *http.Response {
		req, _ := http.NewRequest("POST", s.url+"/mcp", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("MCP-Protocol-Version", "2025-06-18")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
		}
		resp, err := s.clients[agent].Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	init := post("support", "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	sid := init.Header.Get("Mcp-Session-Id")
	if init.StatusCode != 200 || sid == "" {
		t.Fatalf("initialize: %d, session %q", init.StatusCode, sid)
	}
	before := calls["search_kb"]
	hijack := post("training", sid, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"search_kb","arguments":{"query":"x"}}}`)
	if hijack.StatusCode != http.StatusForbidden {
		t.Fatalf("another identity's session: status %d, want 403", hijack.StatusCode)
	}
	if calls["search_kb"] != before {
		t.Fatal("hijacked session reached the server")
	}
}
