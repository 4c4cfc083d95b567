package anthropic

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
	"github.com/wardenhq/warden/internal/protocol/llmtest"
	"github.com/wardenhq/warden/internal/protocol/openai"
	"github.com/wardenhq/warden/internal/sse"
)

type goldenCase struct {
	Method    string            `json:"method"`
	Path      string            `json:"path"`
	Body      *string           `json:"body"`
	Headers   map[string]string `json:"headers"`
	Options   map[string]any    `json:"options"`
	WantCalls any               `json:"want_calls"`
	WantError *struct {
		Status int    `json:"status"`
		Code   string `json:"code"`
	} `json:"want_error"`
	WantForward *string `json:"want_forward"`
}

func loadGolden(tb testing.TB) map[string]goldenCase {
	tb.Helper()
	files, _ := filepath.Glob("testdata/requests/*.json")
	if len(files) == 0 {
		tb.Fatal("no cases")
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

func (c goldenCase) request(body []byte) *protocol.Request {
	r := httptest.NewRequest(c.Method, "http://warden.test"+c.Path, nil)
	r.Header.Set("Content-Type", "application/json")
	for k, v := range c.Headers {
		r.Header.Set(k, v)
	}
	return &protocol.Request{HTTP: r, Body: body, Backend: "b"}
}

func canonical(tb testing.TB, v any) string {
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

func callsJSON(tb testing.TB, calls []protocol.Call) string {
	var arr []any
	for _, c := range calls {
		arr = append(arr, map[string]any{"action": c.Action, "operation": c.Operation, "resource": c.Resource})
	}
	return canonical(tb, arr)
}

func allow(n int) []protocol.Decision {
	ds := make([]protocol.Decision, n)
	for i := range ds {
		ds[i].Allow = true
	}
	return ds
}

func TestGoldenRequests(t *testing.T) {
	for name, c := range loadGolden(t) {
		t.Run(name, func(t *testing.T) {
			lim, err := openai.ParseLimits(c.Options)
			if err != nil {
				t.Fatal(err)
			}
			p := New(Config{Backends: map[string]openai.Limits{"b": lim}})
			var body []byte
			if c.Body != nil {
				body = []byte(*c.Body)
			}
			x, err := p.Parse(context.Background(), c.request(body))
			if c.WantError != nil {
				var pe *protocol.Error
				if !errors.As(err, &pe) || pe.Status != c.WantError.Status || pe.Code != c.WantError.Code {
					t.Fatalf("Parse = %v, want %d %s", err, c.WantError.Status, c.WantError.Code)
				}
				rec := httptest.NewRecorder()
				pe.Err = errors.New("INTERNAL")
				p.WriteError(rec, nil, pe)
				var eb struct {
					Type  string `json:"type"`
					Error struct{ Type, Message, Code string }
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Type != "error" || eb.Error.Type == "" || eb.Error.Code != pe.Code || strings.Contains(rec.Body.String(), "INTERNAL") {
					t.Fatalf("error body %s (%v)", rec.Body.String(), err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if c.WantCalls != nil {
				if d := cmp.Diff(canonical(t, c.WantCalls), callsJSON(t, x.Calls())); d != "" {
					t.Errorf("calls (-want +got):\n%s", d)
				}
			}
			fwd, err := x.Forward(context.Background(), allow(len(x.Calls())))
			if err != nil {
				t.Fatal(err)
			}
			if c.WantForward != nil && string(fwd) != *c.WantForward {
				t.Errorf("forward %s\nwant %s", fwd, *c.WantForward)
			}
			if strings.Contains(callsJSON(t, x.Calls()), "SECRET") {
				t.Error("a credential reached the policy input")
			}
		})
	}
}

func post(t *testing.T, h *harness, path, body string) (*http.Response, []sse.Event) {
	t.Helper()
	req, _ := http.NewRequest("POST", h.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Anthropic-Version", "2023-06-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		resp.Body = io.NopCloser(strings.NewReader(string(b)))
		return resp, nil
	}
	rd := sse.NewReader(resp.Body, sse.ReaderOptions{})
	var evs []sse.Event
	for {
		ev, err := rd.Next()
		if err == io.EOF {
			return resp, evs
		}
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		evs = append(evs, ev)
	}
}

const streamBody = `{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hello, Claude"}]}`

func TestStreamMetered(t *testing.T) {
	h := newHarness(t, llmtest.Config{Chunks: 5}, openai.Limits{}, nil)
	_, evs := post(t, h, "/v1/messages", streamBody)
	if len(evs) != 11 || evs[0].Type != "message_start" || evs[len(evs)-1].Type != "message_stop" {
		t.Fatalf("events %+v", evs)
	}
	a := h.Audit()
	if a["prompt_tokens"] != int64(12) || a["completion_tokens"] != int64(5) || a["usage_source"] != "reported" || a["finish_reason"] != "end_turn" {
		t.Fatalf("audit %v", a)
	}
	if h.meter.Total != 17 {
		t.Fatalf("charged %d (%v)", h.meter.Total, h.meter.Charges)
	}
}

func TestStreamBudgetCutoff(t *testing.T) {
	h := newHarness(t, llmtest.Config{Chunks: 40}, openai.Limits{}, nil)
	h.meter.Budget = 20 // input 12 then ~2 tokens per delta
	_, evs := post(t, h, "/v1/messages", streamBody)
	last := evs[len(evs)-1]
	if last.Type != "error" || !strings.Contains(last.Data, `"type":"rate_limit_error"`) || !strings.Contains(last.Data, `"code":"budget_exhausted"`) {
		t.Fatalf("last event %+v", last)
	}
	for _, ev := range evs[:len(evs)-1] {
		if ev.Type == "error" || ev.Type == "message_stop" {
			t.Fatalf("unexpected %s before the cut-off", ev.Type)
		}
	}
	if a := h.Audit(); a["cutoff_reason"] != "budget_exhausted" || h.meter.Total > 20 {
		t.Fatalf("audit %v charged %d", a, h.meter.Total)
	}
}

func TestNonStreamAndMCPDenied(t *testing.T) {
	h := newHarness(t, llmtest.Config{Chunks: 3}, openai.Limits{}, nil)
	h.decide = func(c protocol.Call) bool { return c.Action != openai.ActionConnectExternal }
	resp, _ := post(t, h, "/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"Hi"}]}`)
	if resp.StatusCode != 200 || h.meter.Total != 15 {
		t.Fatalf("status %d charged %d", resp.StatusCode, h.meter.Total)
	}
	resp, _ = post(t, h, "/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"Hi"}],"mcp_servers":[{"type":"url","url":"https://x.example/mcp","name":"x"}]}`)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 403 || !strings.Contains(string(b), `"type":"permission_error"`) {
		t.Fatalf("mcp_servers: %d %s", resp.StatusCode, b)
	}
	if h.up.Requests() != 1 {
		t.Fatalf("upstream saw %d requests", h.up.Requests())
	}
}

func TestModelsFiltered(t *testing.T) {
	h := newHarness(t, llmtest.Config{}, openai.Limits{}, nil)
	h.decide = func(c protocol.Call) bool {
		return c.Action != protocol.ActionInvoke || strings.HasPrefix(c.Resource["model"].(string), "claude")
	}
	resp, err := http.Get(h.srv.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct{ Data []struct{ ID string } }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	if len(list.Data) != 1 || list.Data[0].ID != "claude-sonnet-4-5" {
		t.Fatalf("models %+v", list.Data)
	}
	resp2, _ := http.Get(h.srv.URL + "/v1/models/gpt-4o")
	resp2.Body.Close()
	if resp2.StatusCode != 404 {
		t.Fatalf("hidden model status %d", resp2.StatusCode)
	}
}

func FuzzParse(f *testing.F) {
	for _, c := range loadGolden(f) {
		if c.Body != nil && c.Method == "POST" {
			f.Add(c.Path, []byte(*c.Body))
		}
	}
	p := New(Config{})
	f.Fuzz(func(t *testing.T, path string, body []byte) {
		c := goldenCase{Method: "POST", Path: "/"}
		req := c.request(body)
		req.HTTP.URL.Path = path
		x, err := p.Parse(context.Background(), req)
		if err != nil {
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Status < 400 || pe.Status > 499 {
				t.Fatalf("Parse error %v", err)
			}
			return
		}
		fwd, err := x.Forward(context.Background(), allow(len(x.Calls())))
		if err != nil || fwd == nil {
			return
		}
		req2 := c.request(fwd)
		req2.HTTP.URL.Path = path
		x2, err := p.Parse(context.Background(), req2)
		if err != nil {
			t.Fatalf("forwarded body rejected: %v", err)
		}
		if a, b := callsJSON(t, x.Calls()), callsJSON(t, x2.Calls()); a != b {
			t.Fatalf("forwarded body classifies differently:\n%s\n%s", a, b)
		}
	})
}
