package mcp

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// echoUpstream is a minimal real MCP-ish server: it answers every request
// with an empty result carrying the request's id, and counts what it saw.
func echoUpstream(t testing.TB) (*httptest.Server, *counter) {
	c := &counter{next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s := string(b)
		i := strings.Index(s, `"id":`)
		if i < 0 {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		rest := s[i+5:]
		j := strings.IndexAny(rest, ",}")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{}}`, rest[:j])
	})}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return srv, c
}

// TestBadInputs: every malformed or ambiguous request is refused with a
// JSON-RPC error or a 4xx, and the upstream never sees it.
func TestBadInputs(t *testing.T) {
	up, cnt := echoUpstream(t)
	p := mustNew(t, map[string]any{"allowed_origins": []any{"https://app.example"}, "max_message_bytes": 4096}, nil)
	h := newHarness(t, p, up.URL, rule{allow: true})
	ping := `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	v0618 := map[string]string{hdrVersion: Rev20250618}
	v2026 := map[string]string{hdrVersion: Rev20260728, hdrMethod: "tools/call", hdrName: "read_file"}
	call2026 := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`
	cases := []struct {
		name   string
		hdr    map[string]string
		body   string
		status int
		reason string
	}{
		{"malformed json", nil, `{"jsonrpc":"2.0","id":1,`, 400, "invalid_json"},
		{"duplicate key", nil, `{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}`, 400, "invalid_json"},
		{"case variant key", nil, `{"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/call"}`, 400, "invalid_json"},
		{"NUL-suffixed key", nil, `{"jsonrpc":"2.0","id":1,"params":{},"method\u0000x":"tools/call"}`, 400, "invalid_request"},
		{"case variant key alone", nil, `{"jsonrpc":"2.0","id":1,"METHOD":"tools/call"}`, 400, "invalid_request"},
		{"wrong jsonrpc", nil, `{"jsonrpc":"1.0","id":1,"method":"ping"}`, 400, "invalid_request"},
		{"null id", nil, `{"jsonrpc":"2.0","id":null,"method":"ping"}`, 400, "invalid_request"},
		{"float id", nil, `{"jsonrpc":"2.0","id":1.5,"method":"ping"}`, 400, "invalid_request"},
		{"exponent id", nil, `{"jsonrpc":"2.0","id":1e2,"method":"ping"}`, 400, "invalid_request"},
		{"object id", nil, `{"jsonrpc":"2.0","id":{},"method":"ping"}`, 400, "invalid_request"},
		{"array params", nil, `{"jsonrpc":"2.0","id":1,"method":"ping","params":[]}`, 400, "invalid_request"},
		{"batch in 2025-06-18", v0618, `[` + ping + `]`, 400, CodeBatchNotAllowed},
		{"empty batch", nil, `[]`, 400, "invalid_request"},
		{"initialize batched", nil, `[{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26"}}]`, 400, CodeBatchNotAllowed},
		{"mixed batch", nil, `[` + ping + `,{"jsonrpc":"2.0","id":9,"result":{}}]`, 400, CodeBatchNotAllowed},
		{"duplicate ids in batch", nil, `[` + ping + `,` + ping + `]`, 400, "invalid_request"},
		{"unknown method", nil, `{"jsonrpc":"2.0","id":7,"method":"tools/execute_anything"}`, 403, CodeUnknownMethod},
		{"notification method as request", nil, `{"jsonrpc":"2.0","id":7,"method":"notifications/initialized"}`, 400, "invalid_request"},
		{"tools/call without name", nil, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{}}`, 400, "invalid_request"},
		{"tools/call arguments not object", nil, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x","arguments":"rm -rf"}}`, 400, "invalid_request"},
		{"homoglyph tool name", nil, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"send_emaіl"}}`, 403, CodeInvalidToolName},
		{"response the server never asked", nil, `{"jsonrpc":"2.0","id":9,"result":{}}`, 400, CodeUnknownResponse},
		{"oversized", nil, `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"` + strings.Repeat("a", 5000) + `"}}`, 413, "body_too_large"},
		{"text/plain", map[string]string{"Content-Type": "text/plain"}, ping, 415, "unsupported_media_type"},
		{"foreign origin", map[string]string{"Origin": "https://evil.example"}, ping, 403, "forbidden_origin"},
		{"unknown version header", map[string]string{hdrVersion: "2099-01-01"}, ping, 400, CodeUnsupportedVersion},
		{"2026 method header mismatch", map[string]string{hdrVersion: Rev20260728, hdrMethod: "tools/list", hdrName: "read_file"}, call2026, 400, CodeHeaderMismatch},
		{"2026 name header mismatch", map[string]string{hdrVersion: Rev20260728, hdrMethod: "tools/call", hdrName: "write_file"}, call2026, 400, CodeHeaderMismatch},
		{"2026 name header missing", map[string]string{hdrVersion: Rev20260728, hdrMethod: "tools/call"}, call2026, 400, CodeHeaderMismatch},
		{"2026 base64 name mismatch", map[string]string{hdrVersion: Rev20260728, hdrMethod: "tools/call", hdrName: "=?base64?d3JpdGVfZmlsZQ==?="}, call2026, 400, CodeHeaderMismatch},
		{"2026 meta version missing", v2026, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file"}}`, 400, CodeHeaderMismatch},
		{"2026 unlisted param header", map[string]string{hdrVersion: Rev20260728, hdrMethod: "tools/call", hdrName: "read_file", "Mcp-Param-Path": "/x"}, call2026, 400, CodeHeaderMismatch},
		{"2026 client response", map[string]string{hdrVersion: Rev20260728}, `{"jsonrpc":"2.0","id":1,"result":{}}`, 400, "invalid_request"},
		{"2026 batch", map[string]string{hdrVersion: Rev20260728}, `[` + call2026 + `]`, 400, CodeBatchNotAllowed},
		{"legacy HTTP+SSE message endpoint", nil, ping, 400, CodeLegacyTransport},
		{"unknown session", map[string]string{hdrSession: "nope"}, ping, 404, CodeSessionUnknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := cnt.count()
			url := h.srv.URL + "/mcp"
			if tc.name == "legacy HTTP+SSE message endpoint" {
				url += "?sessionId=abc"
			}
			st, body, hdr := rawPost(t, url, alice, tc.hdr, tc.body)
			if st != tc.status {
				t.Errorf("status %d, want %d (%s)", st, tc.status, body)
			}
			if !strings.Contains(body, `"reason":"`+tc.reason+`"`) || !strings.Contains(body, `"jsonrpc":"2.0"`) {
				t.Errorf("body %s, want a JSON-RPC error with reason %s", body, tc.reason)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
			if n := cnt.count() - before; n != 0 {
				t.Errorf("upstream saw %d requests", n)
			}
		})
	}
	// Positive control: the same harness does reach the upstream.
	st, body, _ := rawPost(t, h.srv.URL+"/mcp", alice, nil, `{"jsonrpc":"2.0","id":"abc","method":"ping"}`)
	if st != 200 || body != `{"id":"abc","jsonrpc":"2.0","result":{}}` || cnt.count() != 1 {
		t.Fatalf("control: %d %s upstream=%d", st, body, cnt.count())
	}
	// A denied request carries its id and never reaches upstream.
	h.setRules(rule{op: "ping", allow: false}, rule{allow: true})
	st, body, _ = rawPost(t, h.srv.URL+"/mcp", alice, nil, `{"jsonrpc":"2.0","id":42,"method":"ping"}`)
	if st != 403 || !strings.Contains(body, `"id":42`) || !strings.Contains(body, `"code":-32010`) || cnt.count() != 1 {
		t.Fatalf("denied: %d %s upstream=%d", st, body, cnt.count())
	}
}

// TestBatchNotificationsOnlyForwarded: when the allowed part of a
// 2025-03-26 batch is only notifications (the server answers 202), the
// refused requests still get their errors: 202 becomes 200 with the array.
func TestBatchNotificationsOnlyForwarded(t *testing.T) {
	up, cnt := echoUpstream(t)
	p := mustNew(t, nil, nil)
	h := newHarness(t, p, up.URL, rule{op: "tools/call", allow: false}, rule{allow: true})
	body := `[{"jsonrpc":"2.0","id":"x1","method":"tools/call","params":{"name":"a"}},{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}]`
	st, resp, _ := rawPost(t, h.srv.URL, alice, nil, body)
	if st != 200 || !strings.HasPrefix(resp, "[") || !strings.Contains(resp, `"id":"x1"`) || !strings.Contains(resp, "policy_denied") {
		t.Fatalf("%d %s", st, resp)
	}
	if cnt.count() != 1 || cnt.method("tools/call") != 0 {
		t.Fatalf("upstream saw %d requests, %d tools/call", cnt.count(), cnt.method("tools/call"))
	}
}

// TestAllowedOrigin: a configured origin passes, others are 403.
func TestAllowedOrigin(t *testing.T) {
	up, cnt := echoUpstream(t)
	p := mustNew(t, map[string]any{"allowed_origins": []any{"https://app.example"}}, nil)
	h := newHarness(t, p, up.URL, rule{allow: true})
	ping := `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	if st, body, _ := rawPost(t, h.srv.URL, alice, map[string]string{"Origin": "https://app.example"}, ping); st != 200 {
		t.Fatalf("allowed origin: %d %s", st, body)
	}
	if st, _, _ := rawPost(t, h.srv.URL, alice, map[string]string{"Origin": "https://app.example.evil"}, ping); st != 403 {
		t.Fatalf("other origin: %d", st)
	}
	if cnt.count() != 1 {
		t.Fatalf("upstream saw %d", cnt.count())
	}
}
