// Command overhead measures what Warden adds to a request, side by side in
// one run: the same agent calls the same upstream directly (mTLS) and through
// Warden (mTLS on both hops, default role policy, batched audit), at a fixed
// request rate with keep-alive, and the latency distributions are compared.
//
//	go run ./bench/overhead -rate 1000 -duration 10s -size 1024
//
// Direct and Warden runs are interleaved in short rounds so that machine
// noise hits both alike. The output is a table plus ratios; see
// docs/PERFORMANCE.md for recorded figures.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/wardenhq/warden/bench/benchenv"
)

func main() {
	rate := flag.Int("rate", 1000, "requests per second (open loop)")
	dur := flag.Duration("duration", 10*time.Second, "measured time per target (split into rounds)")
	size := flag.Int("size", 1024, "request body bytes (POST)")
	roles := flag.Int("roles", 1000, "role bindings in the roles file (plus the bench agent's)")
	mode := flag.String("audit", "batched", "audit mode: batched or strict")
	proto := flag.String("protocol", "http", "backend kind and workload: http (POST of -size bytes), qdrant (a search), mcp (a tools/call), openai (a chat completion with a -size byte user turn)")
	guardOn := flag.Bool("guard", false, "turn the content detectors on (guard: {}) in Warden")
	flag.Parse()
	if err := run(*rate, *dur, *size, *roles, *mode, *proto, *guardOn); err != nil {
		log.Fatal(err)
	}
}

func run(rate int, dur time.Duration, size, nroles int, mode, proto string, guardOn bool) error {
	env, err := benchenv.New()
	if err != nil {
		return err
	}
	if guardOn {
		env.Extra = "guard: {}\n"
	}
	defer env.Close()
	reply := bytes.Repeat([]byte("r"), 256)
	var echo http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(reply)
	})
	wl, err := newWorkload(proto, size)
	if err != nil {
		return err
	}
	if wl.upstream != nil {
		echo = wl.upstream
	}
	// The direct target accepts the agent; the Warden target accepts only Warden.
	directAddr, err := env.Dev.Serve(env.Upstream, benchenv.AgentID, echo)
	if err != nil {
		return err
	}
	viaAddr, err := env.Dev.Serve(env.Upstream, benchenv.WardenID, echo)
	if err != nil {
		return err
	}
	var rb bytes.Buffer
	rb.WriteString("warden:\n  bindings:\n    spiffe://warden.test/agent/bench: [caller]\n")
	for i := 0; i < nroles; i++ {
		fmt.Fprintf(&rb, "    spiffe://warden.test/agent/filler-%d: [caller]\n", i)
	}
	rb.WriteString("  roles:\n    caller:\n      permissions:\n        - backend: app\n          actions: [\"*\"]\n")
	if err := env.Start(wl.kind, "https://"+viaAddr, rb.String(), mode); err != nil {
		return err
	}
	direct := env.Client(benchenv.UpstreamID)
	via := env.Client(benchenv.WardenID)
	body := wl.body
	targets := []*target{
		{name: "direct", url: "https://" + directAddr + wl.path, client: direct, header: wl.header},
		{name: "warden", url: env.URL() + wl.path, client: via, header: wl.header},
	}
	// Warm up connections and caches.
	for _, t := range targets {
		t.load(rate, 2*time.Second, body, false)
	}
	rounds := 10
	for i := 0; i < rounds; i++ {
		for _, t := range targets {
			t.load(rate, dur/time.Duration(rounds), body, true)
		}
	}
	fmt.Printf("# Warden overhead, %d req/s open loop, workload %s (%d B request bodies), HTTP/1.1 keep-alive, mTLS both setups\n", rate, wl.name, len(body))
	fmt.Printf("# %s, %d CPUs, %s/%s, audit=%s, %d role bindings, guard=%v\n", runtime.Version(), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, mode, nroles+1, guardOn)
	fmt.Printf("%-8s %8s %8s %10s %10s %10s %10s\n", "target", "ok", "errors", "p50", "p90", "p99", "max")
	for _, t := range targets {
		s := t.stats()
		fmt.Printf("%-8s %8d %8d %10s %10s %10s %10s\n", t.name, s.n, t.errors, s.p50, s.p90, s.p99, s.max)
	}
	d, w := targets[0].stats(), targets[1].stats()
	fmt.Printf("\nadded by Warden: p50 %s (x%.2f), p90 %s, p99 %s (x%.2f)\n",
		w.p50-d.p50, float64(w.p50)/float64(d.p50), w.p90-d.p90, w.p99-d.p99, float64(w.p99)/float64(d.p99))
	return nil
}

type target struct {
	name   string
	url    string
	header http.Header
	client *http.Client
	mu     sync.Mutex
	lat    []time.Duration
	errors int
}

// load sends requests at a fixed rate (open loop: a slow response does not
// delay the next send), recording each latency from its scheduled start so
// queueing is not hidden (no coordinated omission).
func (t *target) load(rate int, d time.Duration, body []byte, record bool) {
	interval := time.Second / time.Duration(rate)
	n := int(d / interval)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < n; i++ {
		sched := start.Add(time.Duration(i) * interval)
		if w := time.Until(sched); w > 0 {
			time.Sleep(w)
		}
		wg.Add(1)
		go func(sched time.Time) {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, t.url, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/octet-stream")
			for k, v := range t.header {
				req.Header[k] = v
			}
			resp, err := t.client.Do(req)
			ok := err == nil && resp.StatusCode == 200
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			lat := time.Since(sched)
			if !record {
				return
			}
			t.mu.Lock()
			if ok {
				t.lat = append(t.lat, lat)
			} else {
				t.errors++
			}
			t.mu.Unlock()
		}(sched)
	}
	wg.Wait()
}

type summary struct {
	n                  int
	p50, p90, p99, max time.Duration
}

func (t *target) stats() summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := append([]time.Duration(nil), t.lat...)
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	if len(l) == 0 {
		return summary{}
	}
	q := func(p float64) time.Duration { return l[int(p*float64(len(l)-1))] }
	return summary{n: len(l), p50: q(.50), p90: q(.90), p99: q(.99), max: l[len(l)-1]}
}
