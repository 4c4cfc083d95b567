package mcp

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/sse"
)

// TestBatch20250326: a 2025-03-26 batch with an allowed call, a denied
// call, an unknown method and a notification. The allowed ones go upstream
// (as a batch), the refused ones are answered by Warden, and the client
// gets one merged batch (JSON) or stream (SSE) with every id answered once.
func TestBatch20250326(t *testing.T) {
	for _, jsonResp := range []bool{true, false} {
		t.Run(fmt.Sprint("json=", jsonResp), func(t *testing.T) {
			counts := &toolCounts{}
			up, _ := startUpstream(t, newSDKServer(counts, nil), true, jsonResp)
			p := mustNew(t, nil, nil)
			h := newHarness(t, p, up.URL, aliceRules...)
			hdr := map[string]string{hdrVersion: Rev20250326}
			body := `[` +
				`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/data/x"}}},` +
				`{"jsonrpc":"2.0","id":"two","method":"tools/call","params":{"name":"delete_all","arguments":{"path":"/"}}},` +
				`{"jsonrpc":"2.0","id":3,"method":"secret/backdoor"},` +
				`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":77}}` +
				`]`
			st, resp, rh := rawPost(t, h.srv.URL, alice, hdr, body)
			if st != http.StatusOK {
				t.Fatalf("status %d: %s", st, resp)
			}
			var msgs []map[string]any
			if strings.HasPrefix(rh.Get("Content-Type"), "text/event-stream") {
				rd := sse.NewReader(strings.NewReader(resp), sse.ReaderOptions{})
				for {
					ev, err := rd.Next()
					if err != nil {
						break
					}
					if ev.HasData && ev.Data != "" {
						msgs = append(msgs, decodeMsgs(t, ev.Data)...)
					}
				}
			} else {
				if !strings.HasPrefix(resp, "[") {
					t.Fatalf("batch answered with a non-array: %s", resp)
				}
				msgs = decodeMsgs(t, resp)
			}
			byID := map[string]map[string]any{}
			for _, m := range msgs {
				k, _ := idKey(m["id"])
				if _, dup := byID[k]; dup {
					t.Fatalf("id %s answered twice", k)
				}
				byID[k] = m
			}
			if len(byID) != 3 {
				t.Fatalf("answers %v", msgs)
			}
			if _, ok := byID["n:1"]["result"]; !ok {
				t.Errorf("allowed call not answered by the server: %v", byID["n:1"])
			}
			if e, _ := byID["s:two"]["error"].(map[string]any); e == nil || !strings.Contains(fmt.Sprint(e["data"]), "policy_denied") {
				t.Errorf("denied call: %v", byID["s:two"])
			}
			if e, _ := byID["n:3"]["error"].(map[string]any); e == nil || !strings.Contains(fmt.Sprint(e["data"]), CodeUnknownMethod) {
				t.Errorf("unknown method: %v", byID["n:3"])
			}
			if counts.get("read_file") != 1 || counts.get("delete_all") != 0 {
				t.Errorf("upstream ran %v", counts.n)
			}
			h.eventually(t, "batch audit", func(as []map[string]any) bool {
				for _, a := range as {
					if a["batch"] == 4 && a["refused_messages"] == 2 && a["forwarded_messages"] == 2 {
						return true
					}
				}
				return false
			})
		})
	}
}

func decodeMsgs(t testing.TB, s string) []map[string]any {
	t.Helper()
	tree, err := jsonstrict.Parse([]byte(s), jsonstrict.Options{})
	if err != nil {
		t.Fatalf("client got invalid JSON %q: %v", s, err)
	}
	var out []map[string]any
	switch v := tree.(type) {
	case []any:
		for _, e := range v {
			out = append(out, e.(map[string]any))
		}
	case map[string]any:
		out = append(out, v)
	}
	return out
}

// TestLegacySSERefused: the deprecated HTTP+SSE transport (2024-11-05) is
// refused with a clear error, whichever side it shows up on.
func TestLegacySSERefused(t *testing.T) {
	s := newSDKServer(&toolCounts{}, nil)
	up := newLegacyUpstream(t, s)
	p := mustNew(t, nil, nil)
	h := newHarness(t, p, up, rule{allow: true})
	cl := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "v1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := cl.Connect(ctx, &mcp.SSEClientTransport{Endpoint: h.srv.URL, HTTPClient: peerClient(alice)}, nil)
	if err == nil {
		t.Fatal("legacy SSE transport connected through Warden")
	}
	h.eventually(t, "legacy stream refused", func(as []map[string]any) bool {
		for _, a := range as {
			if a["stream_error"] == CodeLegacyTransport {
				return true
			}
		}
		return false
	})
	// The message endpoint is refused before anything reaches upstream.
	st, body, _ := rawPost(t, h.srv.URL+"/?sessionid=abc", alice, nil, `{"jsonrpc":"2.0","id":1,"method":"ping"}`)
	if st != http.StatusBadRequest || !strings.Contains(body, CodeLegacyTransport) {
		t.Fatalf("legacy POST: %d %s", st, body)
	}
}

func newLegacyUpstream(t testing.TB, s *mcp.Server) string {
	srv := httptest.NewServer(mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	return srv.URL
}
