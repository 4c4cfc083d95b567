package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol/llmtest"
	"github.com/wardenhq/warden/internal/protocol/qdrant/qdranttest"
)

// workload is what one benchmark request is and what serves it.
type workload struct {
	name     string
	kind     string // backend kind in Warden's config
	path     string
	body     []byte
	header   http.Header
	upstream http.Handler // nil: a fixed 256-byte reply
}

type echoIn struct {
	Text string `json:"text"`
}

func newWorkload(proto string, size int) (*workload, error) {
	switch proto {
	case "http":
		return &workload{name: "http POST", kind: "http", path: "/bench", body: bytes.Repeat([]byte("x"), size)}, nil
	case "qdrant":
		// A search on the Qdrant-compatible stand-in (no Qdrant server is
		// installable here): 1,000 points of dimension 8, top 5 with payload.
		qd := qdranttest.Start()
		qd.CreateCollection("kb", 8)
		for i := 0; i < 1000; i++ {
			v := make([]float64, 8)
			for j := range v {
				v[j] = float64((i*7+j*13)%17) / 17
			}
			qd.Put("kb", qdranttest.Point{ID: jsonstrict.Number(fmt.Sprint(i + 1)), Vector: v, Payload: map[string]any{"text": fmt.Sprintf("doc %d", i)}})
		}
		body := []byte(`{"query":[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8],"limit":5,"with_payload":true}`)
		return &workload{name: "qdrant search", kind: "qdrant", path: "/collections/kb/points/query", body: body,
			header: http.Header{"Content-Type": {"application/json"}}, upstream: qd.Handler()}, nil
	case "mcp":
		// A tools/call on an official Go SDK server (stateless, JSON responses).
		s := sdk.NewServer(&sdk.Implementation{Name: "bench", Version: "1"}, nil)
		sdk.AddTool(s, &sdk.Tool{Name: "echo", Description: "echo"},
			func(ctx context.Context, req *sdk.CallToolRequest, in echoIn) (*sdk.CallToolResult, any, error) {
				return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: in.Text}}}, nil, nil
			})
		h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s },
			&sdk.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
		body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}`)
		return &workload{name: "mcp tools/call", kind: "mcp", path: "/mcp", body: body, upstream: h,
			header: http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json, text/event-stream"}, "Mcp-Protocol-Version": {"2025-06-18"}}}, nil
	case "openai":
		// A non-streaming chat completion on the OpenAI-compatible stand-in,
		// the user turn padded to about size bytes of ordinary prose.
		llm, err := llmtest.Start(llmtest.Config{Chunks: 20, Models: []string{"small"}})
		if err != nil {
			return nil, err
		}
		prose := strings.Repeat("Please summarise the ticket history for the customer. ", size/54+1)[:max(size, 16)]
		body, _ := json.Marshal(map[string]any{"model": "small", "messages": []any{map[string]any{"role": "user", "content": prose}}})
		return &workload{name: "openai chat", kind: "openai", path: "/v1/chat/completions", body: body,
			header: http.Header{"Content-Type": {"application/json"}}, upstream: llm}, nil
	}
	return nil, fmt.Errorf("unknown -protocol %q (http, qdrant, mcp, openai)", proto)
}
