package ratelimit_test

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/wardenhq/warden/internal/ratelimit"
)

// The gateway's flow: admit on an estimate, meter the stream, settle on
// the real usage.
func Example() {
	now := time.Date(2026, 3, 2, 10, 0, 30, 0, time.UTC)
	l, err := ratelimit.New(ratelimit.Options{Now: func() time.Time { return now }})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	spec, err := ratelimit.ParseObligation(map[string]any{"requests_per_minute": 60, "tokens_per_minute": 1000})
	if err != nil {
		panic(err) // an obligation Warden does not understand: refuse the request
	}
	// Estimate: prompt tokens + the requested max_tokens.
	res, r := l.Reserve(ctx, spec.Request("spiffe://warden.test/agent/a", "gpt-x", 200+300))
	h := http.Header{}
	r.SetHeaders(h)
	if !r.Allowed {
		fmt.Println("denied:", r.Denial().Status, r.Code)
		return
	}
	defer res.Release(ctx) // refunds if we never get to Settle

	// The response path charges as the stream goes (protocol.Meter).
	for range 3 {
		if err := res.Charge(ctx, 100); err != nil {
			fmt.Println("stop the stream:", err)
			break
		}
	}
	// Settle on the upstream's usage report (here: what was charged).
	if err := res.Settle(ctx, res.Charged()); err != nil {
		fmt.Println("settle:", err)
	}
	fmt.Println(h.Get("X-RateLimit-Remaining-Tokens"), h.Get("X-RateLimit-Reset-Tokens"), res.Charged())
	// Output: 500 30s 300
}
