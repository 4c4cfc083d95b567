package openai

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
)

// goldenCase is one file of testdata/requests.
type goldenCase struct {
	Method      string         `json:"method"`
	Path        string         `json:"path"`
	Body        *string        `json:"body"`
	ContentType string         `json:"content_type"`
	Options     map[string]any `json:"options"`
	WantCalls   any            `json:"want_calls"`
	WantError   *struct {
		Status int    `json:"status"`
		Code   string `json:"code"`
	} `json:"want_error"`
	WantForward *string `json:"want_forward"`
}

func loadGolden(tb testing.TB, dir string) map[string]goldenCase {
	tb.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) == 0 {
		tb.Fatalf("no cases in %s", dir)
	}
	out := map[string]goldenCase{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		var c goldenCase
		if err := json.Unmarshal(b, &c); err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = c
	}
	return out
}

func (c goldenCase) request() *protocol.Request {
	var body []byte
	if c.Body != nil {
		body = []byte(*c.Body)
	}
	r := httptest.NewRequest(c.Method, "http://warden.test"+c.Path, nil)
	ct := c.ContentType
	if ct == "" {
		ct = "application/json"
	}
	r.Header.Set("Content-Type", ct)
	return &protocol.Request{HTTP: r, Body: body, Backend: "b"}
}

// canonicalCalls renders calls as canonical JSON so golden files compare
// exactly, whatever Go types the resource holds.
func canonicalCalls(tb testing.TB, calls []protocol.Call) string {
	tb.Helper()
	var arr []any
	for _, c := range calls {
		arr = append(arr, map[string]any{"action": c.Action, "operation": c.Operation, "resource": toJSONTree(c.Resource)})
	}
	b, err := jsonstrict.Marshal(arr)
	if err != nil {
		tb.Fatalf("marshal calls: %v", err)
	}
	return string(b)
}

func toJSONTree(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := map[string]any{}
		for k, e := range t {
			m[k] = toJSONTree(e)
		}
		return m
	case []map[string]any:
		a := make([]any, len(t))
		for i, e := range t {
			a[i] = toJSONTree(e)
		}
		return a
	case []any:
		a := make([]any, len(t))
		for i, e := range t {
			a[i] = toJSONTree(e)
		}
		return a
	}
	return v
}

func canonicalJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	t, err := jsonstrict.Parse(b, jsonstrict.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	out, _ := jsonstrict.Marshal(t)
	return string(out)
}

func allow(n int) []protocol.Decision {
	ds := make([]protocol.Decision, n)
	for i := range ds {
		ds[i].Allow = true
	}
	return ds
}

func TestGoldenRequests(t *testing.T) {
	for name, c := range loadGolden(t, "testdata/requests") {
		t.Run(name, func(t *testing.T) {
			lim, err := ParseLimits(c.Options)
			if err != nil {
				t.Fatal(err)
			}
			p := New(Config{Backends: map[string]Limits{"b": lim}})
			x, err := p.Parse(context.Background(), c.request())
			if c.WantError != nil {
				var pe *protocol.Error
				if !errors.As(err, &pe) {
					t.Fatalf("Parse = %v, want *protocol.Error %d %s", err, c.WantError.Status, c.WantError.Code)
				}
				if pe.Status != c.WantError.Status || pe.Code != c.WantError.Code {
					t.Fatalf("got %d %s (%s), want %d %s", pe.Status, pe.Code, pe.Message, c.WantError.Status, c.WantError.Code)
				}
				checkWrittenError(t, p, pe)
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if c.WantCalls != nil {
				if d := cmp.Diff(canonicalJSON(t, c.WantCalls), canonicalCalls(t, x.Calls())); d != "" {
					t.Errorf("calls (-want +got):\n%s", d)
				}
			}
			fwd, err := x.Forward(context.Background(), allow(len(x.Calls())))
			if err != nil {
				t.Fatalf("Forward: %v", err)
			}
			if c.WantForward != nil && string(fwd) != *c.WantForward {
				t.Errorf("forward:\n got %s\nwant %s", fwd, *c.WantForward)
			}
			if c.Body != nil && len(fwd) > 0 {
				// What is forwarded parses to the same calls.
				c2 := c
				s := string(fwd)
				c2.Body = &s
				x2, err := p.Parse(context.Background(), c2.request())
				if err != nil {
					t.Fatalf("re-Parse of forwarded body: %v", err)
				}
				if d := cmp.Diff(canonicalCalls(t, x.Calls()), canonicalCalls(t, x2.Calls())); d != "" {
					t.Errorf("forwarded body classifies differently (-orig +fwd):\n%s", d)
				}
			}
		})
	}
}

// checkWrittenError asserts WriteError emits OpenAI's error object with
// the stable code and nothing internal.
func checkWrittenError(t *testing.T, p *Protocol, pe *protocol.Error) {
	t.Helper()
	pe.Err = errors.Join(pe.Err, errors.New("INTERNAL-DETAIL"))
	rec := httptest.NewRecorder()
	p.WriteError(rec, nil, pe)
	if rec.Code != pe.Status || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("WriteError status %d ct %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var body struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    string  `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body %q: %v", rec.Body.String(), err)
	}
	if body.Error.Code != pe.Code || body.Error.Message == "" || body.Error.Type == "" {
		t.Errorf("error body %s", rec.Body.String())
	}
	if strings.Contains(rec.Body.String(), "INTERNAL") {
		t.Errorf("WriteError leaked the internal cause: %s", rec.Body.String())
	}
}

func TestForwardRefusals(t *testing.T) {
	p := New(Config{})
	c := loadGolden(t, "testdata/requests")["responses_mcp_external"]
	x, err := p.Parse(context.Background(), c.request())
	if err != nil {
		t.Fatal(err)
	}
	ds := allow(2)
	ds[1].Allow = false
	_, err = x.Forward(context.Background(), ds)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Status != http.StatusForbidden || pe.Code != protocol.CodePolicyDenied {
		t.Fatalf("denied connect_external: %v", err)
	}
	ds = allow(2)
	ds[0].Obligations = map[string]any{"redact": true}
	if _, err := x.Forward(context.Background(), ds); !errors.As(err, &pe) || pe.Code != CodeObligationRejected {
		t.Fatalf("unknown obligation: %v", err)
	}
	if _, err := x.Forward(context.Background(), allow(1)); !errors.As(err, &pe) || pe.Status != 500 {
		t.Fatalf("too few decisions: %v", err)
	}
	ds = allow(2)
	ds[0].Obligations = map[string]any{"limits": map[string]any{}}
	if _, err := x.Forward(context.Background(), ds); err != nil {
		t.Fatalf("limits obligation: %v", err)
	}
}

func TestParseLimits(t *testing.T) {
	l, err := ParseLimits(map[string]any{"max_tokens_cap": 4096, "max_n": 2, "max_stream_duration": "90s", "max_stream_bytes": 1000})
	if err != nil {
		t.Fatal(err)
	}
	if l.MaxTokensCap != 4096 || l.MaxN != 2 || l.MaxStreamDuration.Seconds() != 90 || l.MaxStreamBytes != 1000 || l.MaxResponseBytes != 64<<20 {
		t.Fatalf("%+v", l)
	}
	for _, bad := range []map[string]any{{"max_token_cap": 1}, {"max_n": "2"}, {"max_stream_duration": 5}, {"max_tokens_cap": 1.5}, {"max_stream_bytes": 0}} {
		if _, err := ParseLimits(bad); err == nil {
			t.Errorf("ParseLimits(%v) accepted", bad)
		}
	}
}
