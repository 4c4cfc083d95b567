package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/protocol"
	"github.com/wardenhq/warden/internal/redistest"
)

// prefixSeq gives every limiter in a test binary its own key space on a
// shared redis-server.
var prefixSeq atomic.Int64

func uniquePrefix() string {
	return fmt.Sprintf("wt%d:%d:", os.Getpid(), prefixSeq.Add(1))
}

func openStore(t testing.TB, addr, prefix, onError string, timeout time.Duration) *RedisStore {
	t.Helper()
	s, err := OpenRedis(context.Background(), config.Redis{Address: addr, KeyPrefix: prefix, OnError: onError, Timeout: timeout})
	if err != nil {
		t.Fatalf("OpenRedis: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestRedisSuite(t *testing.T) {
	addr := redistest.Start(t)
	runSuite(t, func(t *testing.T, now func() time.Time) *Limiter {
		l, err := New(Options{Redis: openStore(t, addr, uniquePrefix(), "deny", 2*time.Second), Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}

// TestRedisTwoReplicasShareOneBudget: two store instances, as two Warden
// replicas would have, enforce one budget together.
func TestRedisTwoReplicasShareOneBudget(t *testing.T) {
	addr := redistest.Start(t)
	clk := newClock()
	prefix := uniquePrefix()
	var replicas [2]*Limiter
	for i := range replicas {
		l, err := New(Options{Redis: openStore(t, addr, prefix, "deny", 2*time.Second), Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		replicas[i] = l
	}
	ctx := context.Background()
	req := Request{SpiffeID: alice, Model: "gpt-x", PerID: Limits{RequestsPerMinute: 30}, PerModel: Limits{TokensPerMinute: 1000}, Tokens: 100}
	var allowed [2]atomic.Int64
	var wg sync.WaitGroup
	for i, l := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if res, r := l.Reserve(ctx, req); r.Allowed {
					allowed[i].Add(1)
					if err := res.Settle(ctx, 100); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	a, b := allowed[0].Load(), allowed[1].Load()
	if a+b != 10 {
		t.Fatalf("replicas admitted %d + %d = %d requests of 100 tokens under a 1000-token budget, want 10", a, b, a+b)
	}
	// A refund on one replica is credit on the other.
	res, r := replicas[0].Reserve(ctx, Request{SpiffeID: alice, PerID: Limits{TokensPerDay: 50}, Tokens: 50})
	if !r.Allowed {
		t.Fatalf("denied: %+v", r)
	}
	if _, r := replicas[1].Reserve(ctx, Request{SpiffeID: alice, PerID: Limits{TokensPerDay: 50}, Tokens: 10}); r.Allowed {
		t.Fatalf("replica 1 admitted past replica 0's reservation")
	}
	if err := res.Settle(ctx, 20); err != nil {
		t.Fatal(err)
	}
	if _, r := replicas[1].Reserve(ctx, Request{SpiffeID: alice, PerID: Limits{TokensPerDay: 50}, Tokens: 30}); !r.Allowed {
		t.Fatalf("replica 1 did not see replica 0's refund: %+v", r)
	}
}

const childEnv = "WARDEN_RATELIMIT_CHILD"

// TestRedisTwoProcessesShareOneBudget re-executes the test binary twice;
// the two processes race for one budget on one redis-server.
func TestRedisTwoProcessesShareOneBudget(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("in a child process")
	}
	addr := redistest.Start(t)
	prefix := uniquePrefix()
	now := strconv.FormatInt(newClock().Now().UnixMicro(), 10)
	var wg sync.WaitGroup
	var counts [2]int
	var errs [2]error
	for i := range counts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^TestRedisChildProcess$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), childEnv+"="+addr+","+prefix+","+now)
			out, err := cmd.CombinedOutput()
			if err != nil {
				errs[i] = fmt.Errorf("child %d: %v: %s", i, err, out)
				return
			}
			m := regexp.MustCompile(`allowed=(\d+)`).FindSubmatch(out)
			if m == nil {
				errs[i] = fmt.Errorf("child %d: no count in output: %s", i, out)
				return
			}
			counts[i], _ = strconv.Atoi(string(m[1]))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		t.Fatal(err)
	}
	if counts[0]+counts[1] != 25 {
		t.Errorf("processes admitted %d + %d requests under a 25 per minute limit, want 25 in total", counts[0], counts[1])
	}
}

// TestRedisChildProcess is the child half of
// TestRedisTwoProcessesShareOneBudget; it does nothing on its own.
func TestRedisChildProcess(t *testing.T) {
	spec := os.Getenv(childEnv)
	if spec == "" {
		t.Skip("only run as a child of TestRedisTwoProcessesShareOneBudget")
	}
	var addr, prefix string
	var nowUS int64
	parts := regexp.MustCompile(`^([^,]+),([^,]+),(\d+)$`).FindStringSubmatch(spec)
	if parts == nil {
		t.Fatalf("bad %s=%q", childEnv, spec)
	}
	addr, prefix = parts[1], parts[2]
	nowUS, _ = strconv.ParseInt(parts[3], 10, 64)
	l, err := New(Options{Redis: openStore(t, addr, prefix, "deny", 5*time.Second), Now: func() time.Time { return time.UnixMicro(nowUS) }})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range 20 {
		if _, r := l.Reserve(context.Background(), Request{SpiffeID: alice, PerID: Limits{RequestsPerMinute: 25}}); r.Allowed {
			n++
		} else if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	fmt.Printf("allowed=%d\n", n)
}

// TestRedisOutage kills redis-server mid-test: "deny" refuses with
// limiter_unavailable, "local" decides with per-replica memory counters;
// both are counted and reported; after a restart Redis decides again.
func TestRedisOutage(t *testing.T) {
	for _, mode := range []string{"deny", "local"} {
		t.Run(mode, func(t *testing.T) {
			srv := redistest.New(t)
			clk := newClock()
			reg := prometheus.NewRegistry()
			l, err := New(Options{Redis: openStore(t, srv.Addr(), uniquePrefix(), mode, 200*time.Millisecond), Now: clk.Now, Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			req := Request{SpiffeID: alice, PerID: Limits{TokensPerMinute: 100}, Tokens: 10}
			res, r := l.Reserve(ctx, req)
			if !r.Allowed || r.Degraded != "" {
				t.Fatalf("with Redis up: %+v", r)
			}

			srv.Kill()
			_, r = l.Reserve(ctx, req)
			if mode == "deny" {
				if r.Allowed || r.Code != protocol.CodeLimiterError || r.Degraded != DegradedDeny || r.Err == nil {
					t.Fatalf("Redis down, deny: %+v", r)
				}
				if e := r.Denial(); e.Status != http.StatusServiceUnavailable {
					t.Errorf("Denial status %d, want 503", e.Status)
				}
				h := http.Header{}
				r.SetHeaders(h)
				if len(h) != 1 || h.Get("Retry-After") != "1" {
					t.Errorf("headers when the store failed: %v, want only Retry-After: 1", h)
				}
				// The breaker opens after breakerFailures in a row: Redis is
				// then not even tried.
				if errors.Is(r.Err, ErrStoreDown) {
					t.Errorf("first failure reported as breaker-open: %v", r.Err)
				}
				for range breakerFailures - 1 {
					l.Reserve(ctx, req)
				}
				if _, r := l.Reserve(ctx, req); !errors.Is(r.Err, ErrStoreDown) || r.Allowed {
					t.Errorf("after %d failures: %+v, want denied with ErrStoreDown", breakerFailures, r)
				}
				// A stream admitted before the outage stops when it needs
				// the store.
				err := res.Charge(ctx, 50)
				var pe *protocol.Error
				if !errors.As(err, &pe) || pe.Code != protocol.CodeLimiterError {
					t.Errorf("Charge with Redis down: %v, want %s", err, protocol.CodeLimiterError)
				}
			} else {
				// 20 tokens over the reservation go to the local counters.
				if err := res.Charge(ctx, 30); err != nil {
					t.Errorf("Charge with Redis down, local: %v", err)
				}
				if !r.Allowed || r.Degraded != DegradedLocal || r.Err == nil {
					t.Fatalf("Redis down, local: %+v", r)
				}
				// The local counters enforce the limit on their own:
				// 10 (above) + 20 (charged) + 7×10 = 100.
				n := 0
				for range 20 {
					if _, r := l.Reserve(ctx, req); r.Allowed {
						n++
						if r.Degraded != DegradedLocal || r.Err == nil {
							t.Fatalf("local admission not reported as degraded: %+v", r)
						}
					}
				}
				if n != 7 {
					t.Errorf("local fallback admitted %d more, want 7", n)
				}
				if got := counterValue(t, l.metrics.fallback, "admit"); got < 1 {
					t.Errorf("warden_limiter_fallback_total{op=admit} = %v, want ≥ 1", got)
				}
			}
			if got := counterValue(t, l.metrics.errors, "admit"); got < 1 {
				t.Errorf("warden_limiter_errors_total{op=admit} = %v, want ≥ 1", got)
			}

			srv.Restart()
			clk.Advance(2 * time.Second) // past the breaker
			deadline := time.Now().Add(10 * time.Second)
			for {
				_, r = l.Reserve(ctx, Request{SpiffeID: alice, PerID: Limits{TokensPerMinute: 100}, Tokens: 1})
				if r.Allowed && r.Degraded == "" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("Redis back but still degraded: %+v", r)
				}
				clk.Advance(2 * time.Second)
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// BenchmarkRedisReserve measures one admission against redis-server on
// loopback (one EVALSHA) and reports p50/p99 latency.
func BenchmarkRedisReserve(b *testing.B) {
	addr := redistest.Start(b)
	l, err := New(Options{Redis: openStore(b, addr, uniquePrefix(), "deny", time.Second)})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	lim := Limits{RequestsPerMinute: 1 << 40, TokensPerMinute: 1 << 40, TokensPerDay: 1 << 40}
	req := Request{SpiffeID: alice, Model: "gpt-x", PerID: lim, PerModel: lim, Tokens: 100}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		_, r := l.Reserve(ctx, req)
		lat = append(lat, time.Since(start))
		if !r.Allowed {
			b.Fatalf("denied: %+v", r)
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// TestRedisSlowDenies pauses redis-server (CLIENT PAUSE) past the
// configured timeout: the admission fails closed instead of waiting.
func TestRedisSlowDenies(t *testing.T) {
	addr := redistest.Start(t)
	clk := newClock()
	s := openStore(t, addr, uniquePrefix(), "deny", 100*time.Millisecond)
	l, err := New(Options{Redis: s, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	req := Request{SpiffeID: alice, PerID: Limits{RequestsPerMinute: 10}}
	if _, r := l.Reserve(ctx, req); !r.Allowed {
		t.Fatalf("denied before the pause: %+v", r)
	}
	if err := s.c.Do(ctx, "CLIENT", "PAUSE", "3000", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.c.Do(context.Background(), "CLIENT", "UNPAUSE") })
	// The pause lasts 3s; only the 100ms timeout can produce a deadline
	// error here.
	_, r := l.Reserve(ctx, req)
	if r.Allowed || r.Code != protocol.CodeLimiterError || !errors.Is(r.Err, context.DeadlineExceeded) {
		t.Fatalf("paused Redis: %+v, want denied %s with a deadline error", r, protocol.CodeLimiterError)
	}
}

// TestRedisCallerCancelIsNotAnOutage: requests whose clients went away do
// not count as store failures nor open the breaker.
func TestRedisCallerCancelIsNotAnOutage(t *testing.T) {
	addr := redistest.Start(t)
	clk := newClock()
	l, err := New(Options{Redis: openStore(t, addr, uniquePrefix(), "deny", time.Second), Now: clk.Now, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	req := Request{SpiffeID: alice, PerID: Limits{RequestsPerMinute: 100}}
	for range breakerFailures + 1 {
		if _, r := l.Reserve(cancelled, req); r.Allowed || !errors.Is(r.Err, context.Canceled) || r.Degraded != "" {
			t.Fatalf("cancelled caller: %+v, want denied with context.Canceled and no Degraded", r)
		}
	}
	if got := counterValue(t, l.metrics.errors, "admit"); got != 0 {
		t.Errorf("warden_limiter_errors_total{op=admit} = %v after cancelled callers, want 0", got)
	}
	if _, r := l.Reserve(context.Background(), req); !r.Allowed {
		t.Errorf("next caller denied: %+v (did cancelled callers open the breaker?)", r)
	}
}
