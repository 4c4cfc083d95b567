package ratelimit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wardenhq/warden/internal/redistest"
)

// TestStoresAgree drives a memory limiter and a Redis limiter with the same
// random sequence of reservations, charges, settlements, releases and clock
// moves, and requires identical results: the two stores implement one
// semantics, not two similar ones.
func TestStoresAgree(t *testing.T) {
	addr := redistest.Start(t)
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) { storesAgree(t, addr, seed) })
	}
}

func storesAgree(t *testing.T, addr string, seed uint64) {
	ctx := context.Background()
	clk := newClock()
	mem := newMemoryLimiter(t, clk.Now)
	red, err := New(Options{Redis: openStore(t, addr, uniquePrefix(), "deny", 2*time.Second), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 2))
	ids := []string{alice, "spiffe://warden.test/agent/bob"}
	models := []string{"", "gpt-a", "gpt-b"}
	limits := []Limits{
		{RequestsPerMinute: 5, TokensPerMinute: 1500},
		{TokensPerMinute: 800, TokensPerDay: 6000},
		{RequestsPerMinute: 3},
		{},
	}
	type pair struct{ m, r *Reservation }
	var open []pair
	outcomes := map[string]int{}
	for step := range 400 {
		what := fmt.Sprintf("step %d", step)
		switch op := rng.IntN(10); {
		case op < 5: // reserve
			req := Request{
				SpiffeID: ids[rng.IntN(len(ids))],
				Model:    models[rng.IntN(len(models))],
				PerID:    limits[rng.IntN(2)],
				PerModel: limits[rng.IntN(len(limits))],
				Tokens:   rng.Int64N(200),
			}
			rm, a := mem.Reserve(ctx, req)
			rr, b := red.Reserve(ctx, req)
			if d := cmp.Diff(a, b); d != "" {
				t.Fatalf("%s: Reserve(%+v) (-memory +redis):\n%s", what, req, d)
			}
			outcomes[a.Code]++
			if rm != nil {
				open = append(open, pair{rm, rr})
			}
		case op < 7 && len(open) > 0: // charge
			p := open[rng.IntN(len(open))]
			units := rng.Int64N(150)
			a, b := p.m.Charge(ctx, units), p.r.Charge(ctx, units)
			if fmt.Sprint(a) != fmt.Sprint(b) {
				t.Fatalf("%s: Charge(%d): memory %v, redis %v", what, units, a, b)
			}
			if a != nil {
				outcomes["charge refused"]++
			}
		case op < 9 && len(open) > 0: // settle or release
			i := rng.IntN(len(open))
			p := open[i]
			open = append(open[:i], open[i+1:]...)
			if rng.IntN(2) == 0 {
				actual := rng.Int64N(300)
				if errA, errB := p.m.Settle(ctx, actual), p.r.Settle(ctx, actual); fmt.Sprint(errA) != fmt.Sprint(errB) {
					t.Fatalf("%s: Settle(%d): memory %v, redis %v", what, actual, errA, errB)
				}
			} else if errA, errB := p.m.Release(ctx), p.r.Release(ctx); fmt.Sprint(errA) != fmt.Sprint(errB) {
				t.Fatalf("%s: Release: %v / %v", what, errA, errB)
			}
		default: // time passes: seconds mostly, sometimes past a window
			d := time.Duration(rng.IntN(20)) * time.Second
			if rng.IntN(20) == 0 {
				d = 3 * time.Hour
			}
			clk.Advance(d)
		}
	}
	t.Logf("outcomes: %v", outcomes)
	// The sequence must reach every branch, or agreement proves little.
	for _, k := range []string{"", "rate_limited", "budget_exhausted", "charge refused"} {
		if outcomes[k] == 0 {
			t.Errorf("no %q outcome in the sequence: %v", k, outcomes)
		}
	}
}
