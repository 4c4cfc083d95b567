package openai

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Limits are the per-backend caps read from a backend's options. The
// Anthropic package uses the same options.
type Limits struct {
	// MaxTokensCap (option max_tokens_cap) refuses requests asking for more
	// output tokens than this in max_tokens, max_completion_tokens or
	// max_output_tokens. 0 (default): no cap.
	MaxTokensCap int64
	// MaxN (option max_n) refuses n (and best_of) above it. Default 1:
	// n multiplies the cost of a call. -1 lifts the cap.
	MaxN int64
	// MaxStreamBytes (option max_stream_bytes) ends a stream that emitted
	// this many bytes. Default 64 MiB.
	MaxStreamBytes int64
	// MaxStreamDuration (option max_stream_duration, a Go duration string)
	// ends a stream that ran this long. Default 0: the gateway's stream
	// timeout applies.
	MaxStreamDuration time.Duration
	// MaxResponseBytes (option max_response_bytes) bounds a non-streaming
	// response body Warden reads to meter it. Default 64 MiB.
	MaxResponseBytes int64
	// MaxEventBytes (option max_event_bytes) bounds one SSE event. Default 1 MiB.
	MaxEventBytes int
}

// Option names accepted by ParseLimits.
var optionNames = []string{"max_tokens_cap", "max_n", "max_stream_bytes", "max_stream_duration", "max_response_bytes", "max_event_bytes"}

// WithDefaults fills zero fields with the documented defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxN == 0 {
		l.MaxN = 1
	}
	if l.MaxStreamBytes <= 0 {
		l.MaxStreamBytes = 64 << 20
	}
	if l.MaxResponseBytes <= 0 {
		l.MaxResponseBytes = 64 << 20
	}
	if l.MaxEventBytes <= 0 {
		l.MaxEventBytes = 1 << 20
	}
	return l
}

// ParseLimits reads a backend's options map (from the config file).
// Unknown options and wrong types are errors, so a typo never silently
// disables a cap.
func ParseLimits(opts map[string]any) (Limits, error) {
	var l Limits
	for k, v := range opts {
		var err error
		switch k {
		case "max_tokens_cap":
			l.MaxTokensCap, err = optInt(v, 0)
		case "max_n":
			l.MaxN, err = optInt(v, -1)
		case "max_stream_bytes":
			l.MaxStreamBytes, err = optInt(v, 1)
		case "max_response_bytes":
			l.MaxResponseBytes, err = optInt(v, 1)
		case "max_event_bytes":
			var n int64
			n, err = optInt(v, 1)
			l.MaxEventBytes = int(min(n, math.MaxInt32))
		case "max_stream_duration":
			s, ok := v.(string)
			if !ok {
				err = fmt.Errorf("must be a duration string like \"5m\"")
				break
			}
			l.MaxStreamDuration, err = time.ParseDuration(s)
			if err == nil && l.MaxStreamDuration < 0 {
				err = fmt.Errorf("must not be negative")
			}
		default:
			names := slices.Clone(optionNames)
			slices.Sort(names)
			return Limits{}, fmt.Errorf("unknown option %q (known: %s)", k, strings.Join(names, ", "))
		}
		if err != nil {
			return Limits{}, fmt.Errorf("option %s: %w", k, err)
		}
	}
	return l.WithDefaults(), nil
}

func optInt(v any, minimum int64) (int64, error) {
	var n int64
	switch x := v.(type) {
	case int:
		n = int64(x)
	case int64:
		n = x
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("too large")
		}
		n = int64(x)
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return 0, fmt.Errorf("must be an integer")
		}
		n = int64(x)
	default:
		return 0, fmt.Errorf("must be an integer")
	}
	if n < minimum {
		return 0, fmt.Errorf("must be at least %d", minimum)
	}
	return n, nil
}
