package qdrant

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
)

// query4K is a 4 KiB Query API request: a 256-dimension vector, a user
// filter with should / must_not / range clauses and a prefetch.
func query4K(tb testing.TB) []byte {
	var b strings.Builder
	b.WriteString(`{"prefetch":{"query":[`)
	for i := range 64 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "0.%04d", (i*7919)%10000)
	}
	b.WriteString(`],"limit":50,"filter":{"must":[{"key":"lang","match":{"value":"en"}}]}},"query":[`)
	for i := 0; b.Len() < 3700; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "0.%06d", (i*104729)%1000000)
	}
	b.WriteString(`],"filter":{"must":[{"key":"topic","match":{"any":["billing","support","sales"]}},{"key":"rank","range":{"gte":1,"lt":100}}],`)
	b.WriteString(`"should":[{"key":"region","match":{"value":"eu"}},{"key":"region","match":{"value":"us"}}],"must_not":{"has_id":[1,2,3]}},`)
	b.WriteString(`"limit":10,"with_payload":["title","url"],"params":{"hnsw_ef":128,"exact":false}}`)
	for b.Len() < 4096 {
		b.WriteString(" ")
	}
	out := []byte(b.String())
	if _, err := jsonstrict.Parse(out, jsonstrict.Options{}); err != nil {
		tb.Fatal(err)
	}
	return out
}

func tenantDecisions(n int) []protocol.Decision {
	ds := make([]protocol.Decision, n)
	for i := range ds {
		ds[i] = protocol.Decision{Allow: true, Obligations: tenantObl("acme")}
	}
	return ds
}

// BenchmarkTenantInject4K measures tenant-filter injection (filter checks,
// wrapping the top-level and prefetch filters) plus the canonical
// re-encoding of a 4 KiB query: Forward on an already parsed request.
func BenchmarkTenantInject4K(b *testing.B) {
	body := query4K(b)
	p := New(Config{})
	x0, err := parse(b, p, "POST", "/collections/kb/points/query", string(body))
	if err != nil {
		b.Fatal(err)
	}
	x := x0.(*exchange)
	filter := x.tree["filter"]
	pf := x.tree["prefetch"].(map[string]any)
	pfFilter := pf["filter"]
	ds := tenantDecisions(len(x.calls))
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	defer reportCPU(b)()
	for b.Loop() {
		x.tree["filter"], pf["filter"] = filter, pfFilter
		x.applied, x.reasons = x.applied[:0], x.reasons[:0]
		if _, err := x.Forward(ctx, ds); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseForwardQuery4K is the whole request path for the same
// query: strict parse, classify, inject, re-encode.
func BenchmarkParseForwardQuery4K(b *testing.B) {
	benchParseForward(b, "/collections/kb/points/query", query4K(b))
}

// BenchmarkParseForwardSearch is Parse+Forward of a typical legacy search
// (a 128-dimension vector, a small filter) for a tenant-bound caller.
func BenchmarkParseForwardSearch(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"vector":[`)
	for i := range 128 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, "0.%05d", (i*7919)%100000)
	}
	sb.WriteString(`],"filter":{"must":[{"key":"topic","match":{"value":"billing"}}]},"limit":10,"with_payload":true}`)
	benchParseForward(b, "/collections/kb/points/search", []byte(sb.String()))
}

func benchParseForward(b *testing.B, path string, body []byte) {
	p := New(Config{})
	r := httptest.NewRequest("POST", "http://q"+path, nil)
	r.Header.Set("Content-Type", "application/json")
	ctx := context.Background()
	ds := tenantDecisions(1)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	defer reportCPU(b)()
	for b.Loop() {
		x, err := p.Parse(ctx, &protocol.Request{HTTP: r, Body: body, Backend: "q"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := x.Forward(ctx, ds); err != nil {
			b.Fatal(err)
		}
	}
}

// reportCPU adds a cpu-ns/op metric: the process's user+system CPU time
// per iteration (GC included). On a shared, oversubscribed machine wall
// time per op mostly measures waiting for a core; CPU time is what a
// request costs.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestInjectAllocs is the allocation budget of tenant injection plus
// re-encoding of the 4 KiB query (22 when written).
func TestInjectAllocs(t *testing.T) {
	body := query4K(t)
	x0, err := parse(t, New(Config{}), "POST", "/collections/kb/points/query", string(body))
	if err != nil {
		t.Fatal(err)
	}
	x := x0.(*exchange)
	filter := x.tree["filter"]
	pf := x.tree["prefetch"].(map[string]any)
	pfFilter := pf["filter"]
	ds := tenantDecisions(len(x.calls))
	n := testing.AllocsPerRun(50, func() {
		x.tree["filter"], pf["filter"] = filter, pfFilter
		x.applied, x.reasons = x.applied[:0], x.reasons[:0]
		if _, err := x.Forward(context.Background(), ds); err != nil {
			t.Fatal(err)
		}
	})
	if n > 30 {
		t.Fatalf("%.0f allocations, budget 30", n)
	}
}

// searchResponse10 is a search response of 10 scored points, each with a
// payload of about 1 KiB of prose; poisoned puts a stored prompt
// injection into the third one.
func searchResponse10(poisoned bool) []byte {
	words := strings.Fields("the invoice is due within thirty days of issue and support answers " +
		"questions about billing refunds shipping and returns for every customer account in the region")
	var b strings.Builder
	b.WriteString(`{"result":[`)
	for i := range 10 {
		if i > 0 {
			b.WriteByte(',')
		}
		var text strings.Builder
		for j := 0; text.Len() < 1024; j++ {
			if j > 0 {
				text.WriteByte(' ')
			}
			text.WriteString(words[(i*7+j*13)%len(words)])
		}
		t := text.String()
		if poisoned && i == 2 {
			t = poison + " " + t
		}
		fmt.Fprintf(&b, `{"id":%d,"version":3,"score":0.%04d,"payload":{"doc_id":"doc-%d","text":%q},"vector":null}`, 100+i, 9000-i*37, i, t)
	}
	b.WriteString(`],"status":"ok","time":0.000412}`)
	return []byte(b.String())
}

// BenchmarkResponseGuardSearch10: Response on a search answer of 10 points
// × 1 KiB payload text. none: no Guard (the body streams through, as
// before the response guard); clean: every payload scanned, nothing found,
// upstream bytes forwarded; poisoned: one point flagged, put to a trivial
// Authorizer that denies it, the response re-encoded without it.
func BenchmarkResponseGuardSearch10(b *testing.B) {
	g := realGuard(b)
	deny := func(_ context.Context, cs []protocol.Call) ([]protocol.Decision, error) {
		return make([]protocol.Decision, len(cs)), nil
	}
	for _, c := range []struct {
		name     string
		guard    protocol.Guard
		poisoned bool
	}{{"none", nil, false}, {"clean", g, false}, {"poisoned", g, true}} {
		b.Run(c.name, func(b *testing.B) {
			x0, err := parse(b, New(Config{}), "POST", "/collections/kb/points/search", `{"vector":[1,0,0],"limit":10,"with_payload":true}`)
			if err != nil {
				b.Fatal(err)
			}
			x := x0.(*exchange)
			x.guard = c.guard
			ctx := context.Background()
			if _, err := x.Forward(ctx, []protocol.Decision{{Allow: true}}); err != nil {
				b.Fatal(err)
			}
			body := searchResponse10(c.poisoned)
			env := &protocol.ResponseEnv{Authorize: deny}
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			defer reportCPU(b)()
			for b.Loop() {
				resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
					Body: io.NopCloser(bytes.NewReader(body))}
				if err := x.Response(ctx, resp, env); err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, resp.Body)
				if err != nil || (c.poisoned != (n < int64(len(body)))) {
					b.Fatalf("copied %d of %d bytes: %v", n, len(body), err)
				}
			}
		})
	}
}
