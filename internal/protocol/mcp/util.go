package mcp

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/wardenhq/warden/internal/jsonstrict"
)

func stringList(v any) ([]string, error) {
	switch x := v.(type) {
	case []string:
		return x, nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, errors.New("must be a list of strings")
			}
			out = append(out, s)
		}
		return out, nil
	case nil:
		return nil, nil
	}
	return nil, errors.New("must be a list of strings")
}

func duration(v any) (time.Duration, error) {
	switch x := v.(type) {
	case string:
		return time.ParseDuration(x)
	case time.Duration:
		return x, nil
	case int:
		return time.Duration(x) * time.Second, nil
	}
	return 0, errors.New("not a duration")
}

func intOf(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int64:
		return x, true
	case uint64:
		return int64(x), x < 1<<63
	default:
		return jsonstrict.Int(v)
	}
}

func joinErrs(prefix string, errs []error) error {
	return fmt.Errorf("%s: %w", prefix, errors.Join(errs...))
}

func isAbs(p string) bool { return filepath.IsAbs(p) }

// hashID summarizes a secret-ish value (a session id) for policy input and
// audit: the first 16 hex digits of its SHA-256.
func hashID(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// digest is the size and SHA-256 of a value's canonical encoding, what the
// audit log records instead of arguments.
func digest(v any) (int, string) {
	b, err := jsonstrict.Marshal(v)
	if err != nil {
		return 0, ""
	}
	sum := sha256.Sum256(b)
	return len(b), hex.EncodeToString(sum[:])
}

func slogStr(k, v string) slog.Attr { return slog.String(k, v) }
