package ratelimit

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseObligation(t *testing.T) {
	tests := []struct {
		name    string
		in      string // JSON, decoded with UseNumber and without
		want    Spec
		wantErr string
	}{
		{name: "absent", in: `null`},
		{name: "empty", in: `{}`},
		{
			name: "roles example",
			in:   `{"requests_per_minute": 60, "tokens_per_minute": 20000, "tokens_per_day": 1000000}`,
			want: Spec{PerID: Limits{RequestsPerMinute: 60, TokensPerMinute: 20000, TokensPerDay: 1000000}},
		},
		{
			name: "per model",
			in:   `{"tokens_per_day": 100, "per_model": {"requests_per_minute": 5, "tokens_per_minute": 10}}`,
			want: Spec{PerID: Limits{TokensPerDay: 100}, PerModel: Limits{RequestsPerMinute: 5, TokensPerMinute: 10}},
		},
		{name: "unknown key", in: `{"requests_per_hour": 5}`, wantErr: "requests_per_hour: unknown limit"},
		{name: "unknown per_model key", in: `{"per_model": {"rpm": 5}}`, wantErr: "per_model.rpm: unknown limit"},
		{name: "fraction", in: `{"tokens_per_day": 1.5}`, wantErr: "tokens_per_day"},
		{name: "negative", in: `{"tokens_per_day": -1}`, wantErr: "must not be negative"},
		{name: "string", in: `{"tokens_per_day": "100"}`, wantErr: "want a number"},
		{name: "not an object", in: `[1]`, wantErr: "want an object"},
		{name: "per_model not an object", in: `{"per_model": 5}`, wantErr: "per_model: want an object"},
		{name: "all errors at once", in: `{"a": 1, "b": 2}`, wantErr: "a: unknown limit\nb: unknown limit"},
	}
	for _, tt := range tests {
		for _, useNumber := range []bool{false, true} {
			t.Run(tt.name, func(t *testing.T) {
				dec := json.NewDecoder(strings.NewReader(tt.in))
				if useNumber {
					dec.UseNumber()
				}
				var v any
				if err := dec.Decode(&v); err != nil {
					t.Fatal(err)
				}
				got, err := ParseObligation(v)
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(tt.want, got); d != "" {
					t.Errorf("(-want +got):\n%s", d)
				}
			})
		}
	}
	if got, err := ParseObligation(map[string]any{"requests_per_minute": int64(7), "tokens_per_day": 9}); err != nil || got.PerID != (Limits{RequestsPerMinute: 7, TokensPerDay: 9}) {
		t.Errorf("Go integers: %+v, %v", got, err)
	}
}

// FuzzParseObligation: any JSON value either parses to non-negative caps
// or is refused; it never panics.
func FuzzParseObligation(f *testing.F) {
	for _, seed := range []string{
		`null`, `{}`, `[1]`, `"x"`,
		`{"requests_per_minute": 60, "tokens_per_minute": 20000, "tokens_per_day": 1000000}`,
		`{"tokens_per_day": 100, "per_model": {"requests_per_minute": 5}}`,
		`{"tokens_per_day": 1.5}`, `{"tokens_per_day": -1}`, `{"tokens_per_day": 1e300}`,
		`{"per_model": {"per_model": {}}}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, useNumber := range []bool{false, true} {
			dec := json.NewDecoder(strings.NewReader(in))
			if useNumber {
				dec.UseNumber()
			}
			var v any
			if dec.Decode(&v) != nil {
				return
			}
			s, err := ParseObligation(v)
			if err != nil {
				if s != (Spec{}) {
					t.Fatalf("error %v with a non-zero Spec %+v", err, s)
				}
				continue
			}
			for _, l := range []Limits{s.PerID, s.PerModel} {
				if l.RequestsPerMinute < 0 || l.TokensPerMinute < 0 || l.TokensPerDay < 0 {
					t.Fatalf("negative cap from %s: %+v", in, s)
				}
			}
		}
	})
}
