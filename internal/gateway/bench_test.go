package gateway

import (
	"bytes"
	"io"
	"net/http"
	"sort"
	"testing"
	"time"
)

// BenchmarkRequest is the whole request path in one process: an agent's
// mTLS keep-alive connection → Warden (identity, revocation, route, body,
// generic protocol, default role policy, batched audit, proxy) → an mTLS
// upstream, for a 1 KiB POST. allocs/op include the client's and the
// upstream's; BenchmarkRequestDirect is the same call without Warden, so
// the difference is Warden's share. bench/overhead measures latency side
// by side at a fixed rate.
func BenchmarkRequest(b *testing.B) {
	e := newTestEnv(b, envOpts{})
	benchPost(b, e.clients["writer"], e.url+"/bench")
}

func BenchmarkRequestDirect(b *testing.B) {
	e := newTestEnv(b, envOpts{})
	// The upstream accepts only Warden: call it with Warden's SVID, as an
	// agent would call an upstream directly.
	svid, err := e.dev.Mint("warden-direct", wardenID, "localhost")
	if err != nil {
		b.Fatal(err)
	}
	client := e.dev.Client(svid, upstreamID)
	benchPost(b, client, "https://"+e.cfg.Backends[0].URL[len("https://"):]+"/bench")
}

func benchPost(b *testing.B, c *http.Client, url string) {
	body := bytes.Repeat([]byte("x"), 1024)
	do := func() time.Duration {
		t0 := time.Now()
		resp, err := c.Post(url, "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
		return time.Since(t0)
	}
	for i := 0; i < 50; i++ {
		do()
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lat = append(lat, do())
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
