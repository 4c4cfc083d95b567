package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wardenhq/warden/internal/config"
)

// randomRoles builds a roles document from small alphabets, so that
// bindings, patterns and obligations overlap often.
func randomRoles(r *rand.Rand) map[string]any {
	pick := func(xs ...any) any { return xs[r.IntN(len(xs))] }
	some := func(xs ...string) []any {
		var out []any
		for _, x := range xs {
			if r.IntN(3) == 0 {
				out = append(out, x)
			}
		}
		if len(out) == 0 {
			out = append(out, xs[r.IntN(len(xs))])
		}
		return out
	}
	roles := map[string]any{}
	for i := range 4 {
		var perms []any
		for range 1 + r.IntN(3) {
			p := map[string]any{
				"backend": pick("*", "llm", "kb"),
				"actions": some("*", "read", "invoke", "write", "connect_external"),
			}
			if r.IntN(2) == 0 {
				p["operations"] = some("chat*", "tools/call", "GET", "*")
			}
			if r.IntN(2) == 0 {
				res := map[string]any{}
				for _, f := range []string{"model", "tool"} {
					if r.IntN(2) == 0 {
						res[f] = some("*", "a*", "ab", "b")
					}
				}
				p["resources"] = res
			}
			if r.IntN(2) == 0 {
				p["obligations"] = pick(map[string]any{"tenant": pick("x", "y")}, map[string]any{"n": 1}, map[string]any{"tenant": "x", "n": 2})
			}
			perms = append(perms, p)
		}
		roles[fmt.Sprintf("r%d", i)] = map[string]any{"permissions": perms}
	}
	bindings := map[string]any{}
	for _, k := range []string{"spiffe://td/a", "spiffe://td/a/*", "spiffe://td/*", "spiffe://td/a/b", "spiffe://other/*"} {
		if r.IntN(3) > 0 {
			bindings[k] = some("r0", "r1", "r2", "r3")
		}
	}
	return map[string]any{"warden": map[string]any{"roles": roles, "bindings": bindings}}
}

func randomInput(r *rand.Rand) *Input {
	pick := func(xs ...any) any { return xs[r.IntN(len(xs))] }
	in := &Input{
		Subject:   Subject{SpiffeID: pick("spiffe://td/a", "spiffe://td/a/b", "spiffe://td/a/b/c", "spiffe://td/c", "spiffe://other/x", "").(string)},
		Action:    pick("read", "invoke", "write", "admin", "connect_external", "").(string),
		Operation: pick("chat.completions", "tools/call", "GET", "").(string),
		Resource:  map[string]any{},
	}
	for _, f := range []string{"backend", "model", "tool"} {
		var v any
		if f == "backend" {
			v = pick("llm", "kb", "mcp", 5, nil, "missing")
		} else {
			v = pick("a", "ab", "abc", "b", "", []any{"a", "ab"}, []any{"ab", "x"}, []any{}, []string{"b"}, 3, json.Number("3"), nil, "missing")
		}
		if v != "missing" {
			in.Resource[f] = v
		}
	}
	if r.IntN(2) == 0 {
		in.Resource["tools"] = pick([]any{}, []any{"get_weather"}).([]any)
	}
	// input.guards: absent, clean, or blocked in various ways (the library's
	// guard rule must agree between the fast path and full evaluation).
	blocked := func(by, ctxs []any, pi float64) map[string]any {
		return map[string]any{"blocked": true, "over_budget": false, "blocked_by": by, "blocked_contexts": ctxs,
			"categories": map[string]any{"prompt_injection": map[string]any{"count": 1.0, "max_score": pi, "rules": []any{"pi.override"}}}}
	}
	if r.IntN(3) == 0 {
		in.Resource["kind"] = pick("openai", "anthropic", "mcp", "qdrant")
	}
	switch r.IntN(7) {
	case 1:
		in.Guards = map[string]any{"blocked": false, "over_budget": false, "blocked_by": []any{}, "blocked_contexts": []any{}, "categories": map[string]any{}}
	case 2:
		in.Guards = blocked([]any{"prompt_injection"}, []any{"user"}, 0.8)
	case 3:
		in.Guards = blocked([]any{"prompt_injection"}, []any{"user"}, 0.95)
	case 4:
		in.Guards = blocked([]any{"prompt_injection", "secret"}, []any{"tool_output"}, 0.7)
	case 5:
		in.Guards = blocked([]any{"secret"}, []any{"user"}, 0)
	case 6:
		// A secret found but under its threshold: not blocked, yet the
		// library adds redact_prompt toward a model.
		in.Guards = map[string]any{"blocked": false, "over_budget": false, "blocked_by": []any{}, "blocked_contexts": []any{},
			"categories": map[string]any{"secret": map[string]any{"count": 1.0, "max_score": 0.6, "rules": []any{"secret.generic-api-key"}}}}
	}
	return in
}

// TestBatchMatchesDecide is the batch path's contract: with the default
// library, DecideMany returns exactly what Decide returns, call for call.
func TestBatchMatchesDecide(t *testing.T) {
	off := false
	for seed := range uint64(8) {
		r := rand.New(rand.NewPCG(seed, 42))
		data := randomRoles(r)
		b, err := json.Marshal(data)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "roles.json")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		e := newEngine(t, config.Policy{Data: []string{p}, TestOnLoad: &off})
		if !e.Status().FastPath {
			t.Fatal("no fast path")
		}
		ins := make([]*Input, 150)
		for i := range ins {
			ins[i] = randomInput(r)
		}
		batch, err := e.DecideMany(context.Background(), ins)
		if err != nil {
			t.Fatalf("seed %d: DecideMany: %v", seed, err)
		}
		allowed := 0
		for i, in := range ins {
			// The reference: full OPA evaluation, not the fast path.
			d, err := e.decideOPA(context.Background(), e.cur.Load(), in)
			if err != nil {
				t.Fatalf("seed %d: Decide: %v", seed, err)
			}
			if d.Allow {
				allowed++
			}
			if diff := cmp.Diff(normalizeDecision(t, d), normalizeDecision(t, batch[i])); diff != "" {
				in, _ := json.Marshal(in)
				t.Errorf("seed %d input %s\ndata %s\n(-Decide +DecideMany):\n%s", seed, in, b, diff)
			}
		}
		if allowed == 0 || allowed == len(ins) {
			t.Errorf("seed %d: %d of %d allowed; the generator should exercise both", seed, allowed, len(ins))
		}
	}
}
