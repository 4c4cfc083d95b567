package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/protocol"
)

// writeLargeRoles writes a roles file with n bindings: a third exact IDs,
// a third path prefixes, a third trust domains, over 50 roles, plus the
// binding the benchmarks call with.
func writeLargeRoles(tb testing.TB, n int) string {
	tb.Helper()
	var b []byte
	b = append(b, "warden:\n  bindings:\n"...)
	for i := range n - 1 {
		switch i % 3 {
		case 0:
			b = fmt.Appendf(b, "    spiffe://example.org/ns/team%d/agent/a%d: [role%d]\n", i%40, i, i%50)
		case 1:
			b = fmt.Appendf(b, "    spiffe://example.org/ns/team%d/svc%d/*: [role%d]\n", i%40, i, i%50)
		default:
			b = fmt.Appendf(b, "    spiffe://td%d.example/*: [role%d]\n", i, i%50)
		}
	}
	b = append(b, "    spiffe://example.org/ns/bench/*: [bench-chat, bench-kb]\n"...)
	b = append(b, "  roles:\n"...)
	for i := range 50 {
		b = fmt.Appendf(b, "    role%d:\n      permissions:\n        - {backend: llm, actions: [invoke], resources: {model: [m%d-*]}}\n        - {backend: kb, actions: [read], resources: {collection: [c%d]}}\n", i, i, i)
	}
	b = append(b, `    bench-chat:
      permissions:
        - backend: llm
          actions: [invoke]
          operations: [chat.completions]
          resources: {model: [gpt-4o-mini, claude-*]}
          obligations: {max_tokens: 1024}
        - backend: mcp
          actions: [invoke]
          operations: [tools/call, tools/list]
          resources: {tool: [search_*, read_*]}
    bench-kb:
      permissions:
        - {backend: kb, actions: [read], resources: {collection: [docs-*]}, obligations: {tenant: acme}}
`...)
	p := filepath.Join(tb.TempDir(), "roles.yaml")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

func benchEngine(b *testing.B, bindings int) *Engine {
	b.Helper()
	off := false
	e, err := New(context.Background(), config.Policy{Data: []string{writeLargeRoles(b, bindings)}, TestOnLoad: &off, Timeout: 10 * time.Second}, "", nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	return e
}

func benchInput() *Input {
	return &Input{
		Subject:   Subject{SpiffeID: "spiffe://example.org/ns/bench/agent/chat-1", TrustDomain: "example.org", Path: "/ns/bench/agent/chat-1", AuthMethod: "mtls"},
		Request:   Request{Method: "POST", Path: "/v1/chat/completions", Host: "llm.internal", Headers: map[string]string{"content-type": "application/json"}},
		Resource:  map[string]any{"kind": "openai", "backend": "llm", "model": "claude-3-haiku", "stream": true, "max_tokens": 512},
		Action:    protocol.ActionInvoke,
		Operation: "chat.completions",
		Time:      time.Date(2026, 11, 23, 17, 0, 0, 0, time.UTC),
	}
}

// BenchmarkDecide measures one decision with the default library and 1,000
// bindings, and reports the latency percentiles (p50-ns, p99-ns).
func BenchmarkDecide(b *testing.B) {
	e := benchEngine(b, 1000)
	in := benchInput()
	ctx := context.Background()
	if d, err := e.Decide(ctx, in); err != nil || !d.Allow {
		b.Fatalf("Decide = %+v, %v; want allow", d, err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	stop := cpuTimer(b)
	for range b.N {
		start := time.Now()
		if _, err := e.Decide(ctx, in); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	stop()
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkDecideMany500 measures filtering a 500-tool tools/list for one
// caller; ns/op is the whole batch.
func BenchmarkDecideMany500(b *testing.B) {
	e := benchEngine(b, 1000)
	ins := toolInputs(500)
	ctx := context.Background()
	ds, err := e.DecideMany(ctx, ins)
	if err != nil || !ds[0].Allow || ds[1].Allow {
		b.Fatalf("DecideMany = %+v, %v", ds[:2], err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	stop := cpuTimer(b)
	for range b.N {
		start := time.Now()
		if _, err := e.DecideMany(ctx, ins); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	stop()
	b.StopTimer()
	reportPercentiles(b, lat)
}

func toolInputs(n int) []*Input {
	ins := make([]*Input, n)
	for i := range ins {
		in := benchInput()
		in.Operation = "tools/call"
		tool := fmt.Sprintf("search_%d", i)
		if i%2 == 1 {
			tool = fmt.Sprintf("delete_%d", i)
		}
		in.Resource = map[string]any{"kind": "mcp", "backend": "mcp", "tool": tool}
		ins[i] = in
	}
	return ins
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkReferenceJSON is a yardstick for reading the figures above on a
// shared machine: decoding this small document with encoding/json takes
// about 1 µs on an idle modern core. Compare ratios, not absolute numbers,
// when the machine is loaded.
func BenchmarkReferenceJSON(b *testing.B) {
	doc := []byte(`{"a":1,"b":[1,2,3],"c":{"d":"e"}}`)
	b.ReportAllocs()
	for range b.N {
		var m map[string]any
		if err := json.Unmarshal(doc, &m); err != nil {
			b.Fatal(err)
		}
	}
}
