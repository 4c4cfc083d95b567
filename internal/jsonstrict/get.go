package jsonstrict

import (
	"fmt"
	"math"
	"strconv"
)

// TypeError says a field is present with the wrong JSON type. Its message
// names the field (a name the protocol asked for, never input) and the
// expected type.
type TypeError struct {
	Key  string
	Want string
}

func (e *TypeError) Error() string {
	return fmt.Sprintf("field %q must be %s", e.Key, e.Want)
}

// The getters below read one field of a parsed object for protocol code.
// They return (value, present, error): present is false when the key is
// missing or null (OpenAI and Anthropic treat an explicit null as unset);
// error is a *TypeError when the value has another type.

// GetString reads a string field.
func GetString(obj map[string]any, key string) (string, bool, error) {
	v, ok := obj[key]
	if !ok || v == nil {
		return "", false, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", true, &TypeError{Key: key, Want: "a string"}
	}
	return s, true, nil
}

// GetObject reads an object field.
func GetObject(obj map[string]any, key string) (map[string]any, bool, error) {
	v, ok := obj[key]
	if !ok || v == nil {
		return nil, false, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, true, &TypeError{Key: key, Want: "an object"}
	}
	return m, true, nil
}

// GetArray reads an array field.
func GetArray(obj map[string]any, key string) ([]any, bool, error) {
	v, ok := obj[key]
	if !ok || v == nil {
		return nil, false, nil
	}
	a, ok := v.([]any)
	if !ok {
		return nil, true, &TypeError{Key: key, Want: "an array"}
	}
	return a, true, nil
}

// GetBool reads a boolean field.
func GetBool(obj map[string]any, key string) (bool, bool, error) {
	v, ok := obj[key]
	if !ok || v == nil {
		return false, false, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, true, &TypeError{Key: key, Want: "a boolean"}
	}
	return b, true, nil
}

// GetInt reads an integer field. Only plain integer syntax fits ("3", not
// "3.0" or "3e0"): upstreams disagree on whether those are integers, so
// Warden refuses to guess.
func GetInt(obj map[string]any, key string) (int64, bool, error) {
	v, ok := obj[key]
	if !ok || v == nil {
		return 0, false, nil
	}
	n, ok := Int(v)
	if !ok {
		return 0, true, &TypeError{Key: key, Want: "an integer"}
	}
	return n, true, nil
}

// Int converts a parsed number (or a Go integer) to int64; ok is false for
// anything else, for fractions, exponents and out-of-range values.
func Int(v any) (int64, bool) {
	switch x := v.(type) {
	case Number:
		n, err := strconv.ParseInt(string(x), 10, 64)
		return n, err == nil
	case int:
		return int64(x), true
	case int64:
		return x, true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x), true
		}
	}
	return 0, false
}

// Float converts a parsed number to float64.
func Float(v any) (float64, bool) {
	switch x := v.(type) {
	case Number:
		f, err := strconv.ParseFloat(string(x), 64)
		return f, err == nil
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}
