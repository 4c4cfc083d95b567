package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Spec is what a policy's "limits" obligation asks for: caps for the
// identity across models and for the identity on the requested model.
type Spec struct {
	PerID    Limits
	PerModel Limits
}

// Request is the admission for one call under s: the gateway's one-liner
// from a decision's obligation to Limiter.Reserve.
func (s Spec) Request(spiffeID, model string, tokens int64) Request {
	return Request{SpiffeID: spiffeID, Model: model, PerID: s.PerID, PerModel: s.PerModel, Tokens: tokens}
}

// ParseObligation reads the "limits" obligation of a policy decision:
//
//	{"requests_per_minute": 60, "tokens_per_minute": 20000, "tokens_per_day": 1000000,
//	 "per_model": {"requests_per_minute": 20, "tokens_per_day": 200000}}
//
// The top-level caps apply to the identity across all models, per_model to
// the identity on each model separately. Unknown keys, negative or
// fractional numbers are errors: an obligation Warden does not understand
// must refuse the request (fail closed), not be ignored. A nil obligation
// is the zero Spec (no caps).
func ParseObligation(v any) (Spec, error) {
	var s Spec
	if v == nil {
		return s, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return s, fmt.Errorf("ratelimit: limits obligation: want an object, got %T", v)
	}
	var errs []error
	for _, k := range sortedKeys(m) {
		if k == "per_model" {
			pm, ok := m[k].(map[string]any)
			if !ok {
				errs = append(errs, fmt.Errorf("per_model: want an object, got %T", m[k]))
				continue
			}
			for _, k2 := range sortedKeys(pm) {
				if err := setLimit(&s.PerModel, k2, pm[k2]); err != nil {
					errs = append(errs, fmt.Errorf("per_model.%w", err))
				}
			}
			continue
		}
		if err := setLimit(&s.PerID, k, m[k]); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Spec{}, fmt.Errorf("ratelimit: limits obligation: %w", err)
	}
	return s, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func setLimit(l *Limits, k string, v any) error {
	var dst *int64
	switch k {
	case "requests_per_minute":
		dst = &l.RequestsPerMinute
	case "tokens_per_minute":
		dst = &l.TokensPerMinute
	case "tokens_per_day":
		dst = &l.TokensPerDay
	default:
		return fmt.Errorf("%s: unknown limit", k)
	}
	n, err := toInt(v)
	if err != nil {
		return fmt.Errorf("%s: %w", k, err)
	}
	if n < 0 {
		return fmt.Errorf("%s: must not be negative, got %d", k, n)
	}
	*dst = n
	return nil
}

// toInt accepts the number types a decoded policy result may hold:
// Go integers, float64 with an integral value, and json.Number-like values.
func toInt(v any) (int64, error) {
	switch n := v.(type) {
	case int:
		return int64(n), nil
	case int64:
		return n, nil
	case int32:
		return int64(n), nil
	case uint64:
		if n > math.MaxInt64 {
			return 0, fmt.Errorf("%d is too large", n)
		}
		return int64(n), nil
	case float64:
		if n != math.Trunc(n) || n >= math.MaxInt64 || n < math.MinInt64 { // float64(MaxInt64) is 2^63, already out of range
			return 0, fmt.Errorf("want an integer, got %v", n)
		}
		return int64(n), nil
	case interface{ Int64() (int64, error) }: // json.Number and kin
		i, err := n.Int64()
		if err != nil {
			return 0, fmt.Errorf("want an integer: %w", err)
		}
		return i, nil
	}
	return 0, fmt.Errorf("want a number, got %T", v)
}
