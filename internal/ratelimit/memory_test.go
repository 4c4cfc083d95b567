package ratelimit

import (
	"context"
	"strconv"
	"testing"
	"time"
)

func newMemoryLimiter(t *testing.T, now func() time.Time) *Limiter {
	t.Helper()
	l, err := New(Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestMemorySuite(t *testing.T) {
	runSuite(t, newMemoryLimiter)
}

// TestMemoryAllocs pins the per-request allocation budget of the memory
// store: one Reservation, nothing else, once the counters exist.
func TestMemoryAllocs(t *testing.T) {
	clk := newClock()
	l := newMemoryLimiter(t, clk.Now)
	ctx := context.Background()
	req := Request{SpiffeID: alice, Model: "gpt-x", Tokens: 10,
		PerID:    Limits{RequestsPerMinute: 1 << 40, TokensPerMinute: 1 << 40, TokensPerDay: 1 << 40},
		PerModel: Limits{RequestsPerMinute: 1 << 40, TokensPerMinute: 1 << 40}}
	allocs := testing.AllocsPerRun(200, func() {
		res, r := l.Reserve(ctx, req)
		if !r.Allowed {
			t.Fatalf("denied: %+v", r)
		}
		if err := res.Charge(ctx, 15); err != nil {
			t.Fatal(err)
		}
		if err := res.Settle(ctx, 12); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("Reserve+Charge+Settle allocates %.1f times, want at most 1 (the Reservation)", allocs)
	}
}

func TestMemorySweepDropsOldWindows(t *testing.T) {
	clk := newClock()
	l := newMemoryLimiter(t, clk.Now)
	ctx := context.Background()
	for i := range 50 {
		req := Request{SpiffeID: "spiffe://warden.test/a/" + strconv.Itoa(i), PerID: Limits{RequestsPerMinute: 10, TokensPerMinute: 10}, Tokens: 1}
		if _, r := l.Reserve(ctx, req); !r.Allowed {
			t.Fatal("denied")
		}
	}
	mem := l.primary.(*memStore)
	count := func() (n int) {
		for i := range mem.shards {
			mem.shards[i].mu.Lock()
			n += len(mem.shards[i].m)
			mem.shards[i].mu.Unlock()
		}
		return n
	}
	if got := count(); got != 50 {
		t.Fatalf("%d scopes, want 50", got)
	}
	clk.Advance(time.Minute)
	for i := range mem.shards {
		mem.shards[i].mu.Lock()
		mem.shards[i].sweep(clk.Now().UnixMicro())
		mem.shards[i].mu.Unlock()
	}
	if got := count(); got != 50 {
		t.Errorf("%d scopes a minute later, want 50 (the token windows are kept a minute past their end)", got)
	}
	clk.Advance(time.Minute + time.Second)
	for i := range mem.shards {
		mem.shards[i].mu.Lock()
		mem.shards[i].sweep(clk.Now().UnixMicro())
		mem.shards[i].mu.Unlock()
	}
	if got := count(); got != 0 {
		t.Errorf("%d scopes after every window expired, want 0", got)
	}
}

func BenchmarkMemoryReserve(b *testing.B) {
	l, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	ids := make([]string, 256)
	for i := range ids {
		ids[i] = "spiffe://warden.test/agent/" + strconv.Itoa(i)
	}
	lim := Limits{RequestsPerMinute: 1 << 40, TokensPerMinute: 1 << 40, TokensPerDay: 1 << 40}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			res, r := l.Reserve(ctx, Request{SpiffeID: ids[i%len(ids)], Model: "gpt-x", PerID: lim, PerModel: lim, Tokens: 100})
			if !r.Allowed {
				b.Fatal("denied")
			}
			_ = res.Settle(ctx, 80)
		}
	})
}

// BenchmarkMemoryReserveSerial is one goroutine: the cost of one check
// without contention.
func BenchmarkMemoryReserveSerial(b *testing.B) {
	l, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	lim := Limits{RequestsPerMinute: 1 << 40, TokensPerMinute: 1 << 40, TokensPerDay: 1 << 40}
	req := Request{SpiffeID: alice, Model: "gpt-x", PerID: lim, PerModel: lim, Tokens: 100}
	b.ReportAllocs()
	for b.Loop() {
		res, r := l.Reserve(ctx, req)
		if !r.Allowed {
			b.Fatal("denied")
		}
		_ = res.Settle(ctx, 80)
	}
}
