package guard

import "sort"

// PolicyInput is what the gateway puts into the policy input under
// input.guards, so Rego can decide on guard results:
//
//	{"blocked": bool, "over_budget": bool, "blocked_by": [...],
//	 "categories": {"secret": {"count": 2, "max_score": 1, "rules": ["secret.aws-access-token"]}, ...}}
//
// It holds counts, scores and rule ids only; never matched text or offsets.
// Values are JSON-compatible (bool, float64, string, []any, map[string]any).
func (r Result) PolicyInput() map[string]any {
	cats := map[string]any{}
	type agg struct {
		count int
		rules map[string]bool
	}
	per := map[string]*agg{}
	for _, f := range r.Findings {
		a := per[f.Category]
		if a == nil {
			a = &agg{rules: map[string]bool{}}
			per[f.Category] = a
		}
		a.count++
		a.rules[f.Rule] = true
	}
	for cat, a := range per {
		rules := make([]string, 0, len(a.rules))
		for k := range a.rules {
			rules = append(rules, k)
		}
		sort.Strings(rules)
		ra := make([]any, len(rules))
		for i, k := range rules {
			ra[i] = k
		}
		cats[cat] = map[string]any{
			"count":     float64(a.count),
			"max_score": r.MaxScore[cat],
			"rules":     ra,
		}
	}
	by := make([]any, len(r.BlockedBy))
	for i, b := range r.BlockedBy {
		by[i] = b
	}
	return map[string]any{
		"blocked":     r.Blocked,
		"over_budget": r.OverBudget,
		"blocked_by":  by,
		"categories":  cats,
	}
}
