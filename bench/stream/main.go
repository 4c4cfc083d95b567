// Command stream measures streaming passthrough side by side in one run: an
// agent streams a chat completion of N chunks from an OpenAI-compatible
// upstream directly (mTLS) and through Warden (kind openai: strict parse,
// policy, usage metering on every chunk, batched audit), alternating, and
// compares time to first token and chunks per second.
//
//	go run ./bench/stream -chunks 1000 -runs 30
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"log"
	"net/http"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/wardenhq/warden/bench/benchenv"

	"github.com/wardenhq/warden/internal/protocol/llmtest"
)

func main() {
	chunks := flag.Int("chunks", 1000, "content deltas per stream")
	runs := flag.Int("runs", 30, "streams per target")
	delay := flag.Duration("delay", 0, "upstream pause before each delta (0: as fast as possible, the worst case for a proxy)")
	flag.Parse()
	if err := run(*chunks, *runs, *delay); err != nil {
		log.Fatal(err)
	}
}

func run(chunks, runs int, delay time.Duration) error {
	env, err := benchenv.New()
	if err != nil {
		return err
	}
	defer env.Close()
	// The upstream accepts both Warden and the agent, so the same server
	// serves the direct and the proxied streams.
	authz := tlsconfig.AuthorizeOneOf(benchenv.WardenID, benchenv.AgentID)
	llm, err := llmtest.Start(llmtest.Config{Chunks: chunks, Delay: delay, Models: []string{"small"},
		TLS: tlsconfig.MTLSServerConfig(env.Upstream, env.Dev.CA.X509Bundle(), authz)})
	if err != nil {
		return err
	}
	defer llm.Close()
	roles := "warden:\n  bindings:\n    spiffe://warden.test/agent/bench: [caller]\n  roles:\n    caller:\n      permissions:\n        - {backend: app, actions: [\"*\"]}\n"
	if err := env.Start("openai", llm.URL, roles, "batched"); err != nil {
		return err
	}
	targets := []*target{
		{name: "direct", url: llm.URL + "/v1/chat/completions", client: env.Client(benchenv.UpstreamID)},
		{name: "warden", url: env.URL() + "/v1/chat/completions", client: env.Client(benchenv.WardenID)},
	}
	body := []byte(`{"model":"small","stream":true,"messages":[{"role":"user","content":"stream please"}]}`)
	for i := 0; i < 3; i++ { // warm up
		for _, t := range targets {
			if _, _, _, err := t.stream(body); err != nil {
				return err
			}
		}
	}
	for i := 0; i < runs; i++ {
		for _, t := range targets {
			ttft, total, n, err := t.stream(body)
			if err != nil {
				return err
			}
			if n != chunks {
				return fmt.Errorf("%s: %d content chunks, want %d", t.name, n, chunks)
			}
			t.ttft = append(t.ttft, ttft)
			t.total = append(t.total, total)
		}
	}
	fmt.Printf("# streaming passthrough, %d-chunk chat completion stream, upstream delay %s per chunk, %d runs each, HTTP/1.1 keep-alive, mTLS both setups\n", chunks, delay, runs)
	fmt.Printf("# %s, %d CPUs, %s/%s\n", runtime.Version(), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	fmt.Printf("%-8s %12s %12s %14s %16s\n", "target", "TTFT p50", "TTFT p99", "stream p50", "chunks/s (p50)")
	d, w := targets[0], targets[1]
	for _, t := range targets {
		fmt.Printf("%-8s %12s %12s %14s %16.0f\n", t.name, q(t.ttft, .5), q(t.ttft, .99), q(t.total, .5), float64(chunks)/q(t.total, .5).Seconds())
	}
	fmt.Printf("\nadded to time to first token by Warden: p50 %s\n", q(w.ttft, .5)-q(d.ttft, .5))
	fmt.Printf("throughput through Warden: %.1f%% of direct (p50 stream time)\n", 100*q(d.total, .5).Seconds()/q(w.total, .5).Seconds())
	return nil
}

type target struct {
	name        string
	url         string
	client      *http.Client
	ttft, total []time.Duration
}

// stream sends one streaming chat and returns the time to the first content
// delta, the time to the end of the stream, and the content deltas seen.
func (t *target) stream(body []byte) (ttft, total time.Duration, n int, err error) {
	start := time.Now()
	req, _ := http.NewRequest(http.MethodPost, t.url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, 0, 0, fmt.Errorf("%s: status %d", t.name, resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "data: ") && strings.Contains(line, `"content":"tok`) {
			if n == 0 {
				ttft = time.Since(start)
			}
			n++
		}
	}
	return ttft, time.Since(start), n, sc.Err()
}

func q(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(p*float64(len(s)-1))]
}
