package mcp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/policy"
	"github.com/wardenhq/warden/internal/protocol"
)

// toolsListBody is a tools/list response with n realistic tools.
func toolsListBody(n int) []byte {
	tools := make([]any, n)
	for i := range tools {
		tools[i] = map[string]any{
			"name":        fmt.Sprintf("tool_%03d", i),
			"description": "Reads a file from the workspace and returns its contents with line numbers.",
			"inputSchema": map[string]any{"type": "object", "properties": map[string]any{
				"path":  map[string]any{"type": "string", "description": "absolute path"},
				"lines": map[string]any{"type": "integer"},
			}, "required": []any{"path"}},
			"annotations": map[string]any{"readOnlyHint": true},
		}
	}
	b, _ := jsonstrict.Marshal(map[string]any{"jsonrpc": "2.0", "id": jsonstrict.Number("7"), "result": map[string]any{"tools": tools}})
	return b
}

func benchFilter(b *testing.B, body []byte, authz protocol.Authorizer, sseMode bool) {
	benchExchange(b, []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/list"}`), body, authz, sseMode, nil)
}

// benchExchange runs one request and its response (body, as JSON or as
// one SSE event) through an exchange: Parse, Forward, Response, read.
func benchExchange(b *testing.B, req, body []byte, authz protocol.Authorizer, sseMode bool, g protocol.Guard) {
	p := mustNew(b, nil, nil)
	env := &protocol.ResponseEnv{Authorize: authz}
	ct, payload := "application/json", body
	if sseMode {
		ct, payload = "text/event-stream", append(append([]byte("id: 1\ndata: "), body...), "\n\n"...)
	}
	hdr := http.Header{hdrVersion: {Rev20250618}}
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	start := cpuClock()
	defer reportCPU(b, start)
	var x *exchange
	for b.Loop() {
		var err error
		if x, err = parseGuarded(p, hdr, req, g); err != nil {
			b.Fatal(err)
		}
		if _, err := x.Forward(context.Background(), allow(1)); err != nil {
			b.Fatal(err)
		}
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {ct}}, Body: io.NopCloser(bytes.NewReader(payload))}
		if err := x.Response(context.Background(), resp, env); err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			b.Fatal(err)
		}
	}
	rg, scanned := x.Audit()["response_guard"].(map[string]any)
	if scanned != (g != nil) || scanned && (rg["withheld"] != 0 || rg["flagged"] != 0 || rg["hidden_tools"] != 0) {
		b.Fatalf("not the clean path measured: %v", rg)
	}
}

// fastAuthz allows every other tool: the filtering cost alone.
func fastAuthz(_ context.Context, calls []protocol.Call) ([]protocol.Decision, error) {
	ds := make([]protocol.Decision, len(calls))
	for i, c := range calls {
		name, _ := c.Resource["tool"].(string)
		ds[i].Allow = len(name) > 0 && name[len(name)-1]%2 == 0
	}
	return ds, nil
}

// opaAuthz decides through the real embedded OPA engine with the default
// policy library and a roles file, building inputs as the gateway does.
func opaAuthz(b testing.TB) protocol.Authorizer {
	return opaAuthzWith(b, `
        - backend: be
          actions: [invoke]
          operations: ["tools/call"]
          resources: {tool: ["tool_0*", "tool_2*", "tool_4*"]}
`)
}

// opaAuthzWith is opaAuthz with alice's permissions given as YAML list items.
func opaAuthzWith(b testing.TB, permissions string) protocol.Authorizer {
	dir := b.TempDir()
	roles := `warden:
  bindings:
    ` + alice + `: [tools]
  roles:
    tools:
      permissions:` + permissions
	if err := os.WriteFile(filepath.Join(dir, "roles.yaml"), []byte(roles), 0o600); err != nil {
		b.Fatal(err)
	}
	eng, err := policy.New(context.Background(), config.Policy{Data: []string{"roles.yaml"}, Timeout: 1e9}, dir, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	subj := policy.Subject{SpiffeID: alice, AuthMethod: "mtls"}
	return func(ctx context.Context, calls []protocol.Call) ([]protocol.Decision, error) {
		ins := make([]*policy.Input, len(calls))
		for i, c := range calls {
			res := make(map[string]any, len(c.Resource)+3)
			for k, v := range c.Resource {
				res[k] = v
			}
			res["kind"], res["backend"], res["route"] = "mcp", "be", "be/"
			ins[i] = &policy.Input{Subject: subj, Request: policy.Request{Method: "POST", Path: "/mcp"}, Resource: res, Action: c.Action, Operation: c.Operation,
				Guards: c.Guards} // a response-path call's verdict, as the gateway passes it
		}
		return eng.DecideMany(ctx, ins)
	}
}

// BenchmarkToolsListFilter500: one tools/list page of 500 tools, parsed,
// filtered (500 calls in one batch), re-encoded. Target ≤ 0.5 ms with a
// fast Authorizer.
func BenchmarkToolsListFilter500(b *testing.B) {
	body := toolsListBody(500)
	b.Run("json/fast", func(b *testing.B) { benchFilter(b, body, fastAuthz, false) })
	b.Run("sse/fast", func(b *testing.B) { benchFilter(b, body, fastAuthz, true) })
	b.Run("json/opa", func(b *testing.B) { benchFilter(b, body, opaAuthz(b), false) })
}

// BenchmarkParseForwardToolsCall: Parse + Calls + Forward of one tools/call.
func BenchmarkParseForwardToolsCall(b *testing.B) {
	p := mustNew(b, nil, nil)
	body := []byte(`{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/data/report.csv","lines":[1,200],"encoding":"utf-8"},"_meta":{"progressToken":"p-42"}}}`)
	hdr := http.Header{hdrVersion: {Rev20251125}}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	start := cpuClock()
	defer reportCPU(b, start)
	for b.Loop() {
		x, err := parseReq(p, hdr, body)
		if err != nil {
			b.Fatal(err)
		}
		_ = x.Calls()
		if _, err := x.Forward(context.Background(), allow(1)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFilterListOnly500: the filtering step alone on an already parsed
// page (500 calls built, one Authorize, items kept or dropped), without the
// JSON parse and re-encoding that every response pays anyway.
func BenchmarkFilterListOnly500(b *testing.B) {
	tree, err := jsonstrict.Parse(toolsListBody(500), jsonstrict.Options{})
	if err != nil {
		b.Fatal(err)
	}
	result := tree.(map[string]any)["result"].(map[string]any)
	tools := result["tools"]
	p := mustNew(b, nil, nil)
	x, err := parseReq(p, http.Header{hdrVersion: {Rev20250618}}, []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/list"}`))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name  string
		authz protocol.Authorizer
	}{{"fast", fastAuthz}, {"opa", opaAuthz(b)}} {
		b.Run(bc.name, func(b *testing.B) {
			env := &protocol.ResponseEnv{Authorize: bc.authz}
			b.ReportAllocs()
			start := cpuClock()
			defer reportCPU(b, start)
			for b.Loop() {
				result["tools"] = tools
				if err := x.filterList(context.Background(), env, "tools/list", "tools", "tools/call", result); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// cpuClock reports process CPU time (user+system, all threads including
// GC). The benchmarks report it per op as cpu-ns/op next to the wall
// ns/op, because on a shared, oversubscribed machine wall time measures
// the neighbours, not this code.
func cpuClock() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuClock()-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkBaselineParseMarshal500: jsonstrict.Parse + Marshal of the same
// 500-tool body, the floor under BenchmarkToolsListFilter500 (what any
// strict, canonical re-emission costs before filtering anything).
func BenchmarkBaselineParseMarshal500(b *testing.B) {
	body := toolsListBody(500)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	start := cpuClock()
	defer reportCPU(b, start)
	for b.Loop() {
		v, err := jsonstrict.Parse(body, jsonstrict.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := jsonstrict.Marshal(v); err != nil {
			b.Fatal(err)
		}
	}
}

// cleanText2K is 2 KiB of ordinary tool output (a README excerpt): text
// the detectors read in full and find nothing in.
var cleanText2K = func() string {
	para := "The exporter reads the nightly sales files from the shared bucket, converts every row to the " +
		"reporting schema and writes one Parquet file per region. Rows with a missing store id are skipped " +
		"and counted; the count is printed at the end of the run together with the elapsed time. To run it " +
		"locally, set the bucket name in config.yaml and start it with make export. "
	var b strings.Builder
	for b.Len() < 2048 {
		b.WriteString(para)
	}
	return b.String()[:2048]
}()

// BenchmarkGuardToolsCall: the cost the response guard adds to a
// tools/call answered with a 2 KiB clean text result: Parse, Forward,
// Response and read, without and with the real guard (one scan, no
// policy evaluation since nothing is found).
func BenchmarkGuardToolsCall(b *testing.B) {
	req := []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/data/README.md"}}}`)
	body, _ := jsonstrict.Marshal(map[string]any{"jsonrpc": "2.0", "id": jsonstrict.Number("7"), "result": map[string]any{
		"content": []any{map[string]any{"type": "text", "text": cleanText2K}}, "isError": false}})
	g := mustGuard(b)
	for _, sseMode := range []bool{false, true} {
		kind := "json"
		if sseMode {
			kind = "sse"
		}
		b.Run(kind+"/noguard", func(b *testing.B) { benchExchange(b, req, body, fastAuthz, sseMode, nil) })
		b.Run(kind+"/guard", func(b *testing.B) { benchExchange(b, req, body, fastAuthz, sseMode, g) })
	}
}

// BenchmarkGuardToolsList100: a tools/list page of 100 clean tools,
// without and with the guard (one scan per definition; still one
// Authorize per page).
func BenchmarkGuardToolsList100(b *testing.B) {
	req := []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/list"}`)
	body := toolsListBody(100)
	g := mustGuard(b)
	b.Run("json/noguard", func(b *testing.B) { benchExchange(b, req, body, fastAuthz, false, nil) })
	b.Run("json/guard", func(b *testing.B) { benchExchange(b, req, body, fastAuthz, false, g) })
}
