package anthropic

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/wardenhq/warden/internal/protocol"
	"github.com/wardenhq/warden/internal/protocol/llmtest"
	"github.com/wardenhq/warden/internal/protocol/openai"
)

// testMeter is a budget: charges that would take the total over Budget
// fail (and are not applied). Budget < 0 means unlimited.
type testMeter struct {
	mu      sync.Mutex
	Budget  int64
	Total   int64
	Charges []int64
}

func (m *testMeter) Charge(_ context.Context, units int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Budget >= 0 && units > 0 && m.Total+units > m.Budget {
		return errors.New("budget exhausted")
	}
	m.Total += units
	m.Charges = append(m.Charges, units)
	return nil
}

// harness is a minimal stand-in for the gateway: it runs the Protocol
// (Parse → decide → Forward → upstream → Response → stream back) in front
// of an llmtest upstream.
type harness struct {
	t     *testing.T
	up    *llmtest.Server
	p     *Protocol
	srv   *httptest.Server
	meter *testMeter
	// decide decides every call (request and response path); nil allows.
	decide func(protocol.Call) bool
	// guard is lent to the protocol in Request.Guard (nil: guardrails off).
	guard protocol.Guard
	// obligations are attached to every allowed request decision.
	obligations map[string]any
	// upstream, when set, replaces the llmtest server (a scripted one).
	upstream string

	mu     sync.Mutex
	calls  []protocol.Call
	audit  map[string]any
	status int
}

func newHarness(t *testing.T, up llmtest.Config, lim openai.Limits, timer *manualTimer) *harness {
	t.Helper()
	u, err := llmtest.Start(up)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.Close)
	h := &harness{t: t, up: u, meter: &testMeter{Budget: -1}}
	cfg := Config{Backends: map[string]openai.Limits{"b": lim}}
	if timer != nil {
		cfg.AfterFunc = timer.after
	}
	h.p = New(cfg)
	h.srv = httptest.NewServer(h)
	t.Cleanup(h.srv.Close)
	return h
}

func (h *harness) authorize(_ context.Context, calls []protocol.Call) ([]protocol.Decision, error) {
	ds := make([]protocol.Decision, len(calls))
	for i, c := range calls {
		ds[i].Allow = h.decide == nil || h.decide(c)
	}
	return ds, nil
}

func (h *harness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ctx := r.Context()
	x, err := h.p.Parse(ctx, &protocol.Request{HTTP: r, Body: body, Backend: "b", Guard: h.guard})
	if err != nil {
		h.p.WriteError(w, r, protocol.AsError(err))
		return
	}
	ds, _ := h.authorize(ctx, x.Calls())
	h.mu.Lock()
	h.calls = x.Calls()
	h.mu.Unlock()
	for i := range ds {
		if ds[i].Allow && h.obligations != nil {
			ds[i].Obligations = h.obligations
		}
	}
	if !ds[0].Allow {
		h.p.WriteError(w, r, protocol.Errorf(http.StatusForbidden, protocol.CodePolicyDenied, "request denied by policy"))
		return
	}
	fwd, err := x.Forward(ctx, ds)
	if err != nil {
		h.p.WriteError(w, r, protocol.AsError(err))
		return
	}
	base := h.up.URL
	if h.upstream != "" {
		base = h.upstream
	}
	out, _ := http.NewRequestWithContext(ctx, r.Method, base+r.URL.Path, bytes.NewReader(fwd))
	out.Header.Set("Content-Type", "application/json")
	out.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		h.p.WriteError(w, r, protocol.Errorf(http.StatusBadGateway, protocol.CodeUpstreamError, "upstream failed"))
		return
	}
	defer resp.Body.Close()
	defer func() {
		h.mu.Lock()
		h.audit = x.Audit()
		h.mu.Unlock()
	}()
	if err := x.Response(ctx, resp, &protocol.ResponseEnv{Authorize: h.authorize, Meter: h.meter}); err != nil {
		h.p.WriteError(w, r, protocol.AsError(err))
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	buf := make([]byte, 32<<10)
	rc := http.NewResponseController(w)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			_ = rc.Flush()
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			panic(http.ErrAbortHandler)
		}
	}
}

// Audit waits for the exchange's audit map (written after the body ends).
func (h *harness) Audit() map[string]any {
	for range 200 {
		h.mu.Lock()
		a := h.audit
		h.mu.Unlock()
		if a != nil {
			return a
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatal("no audit record")
	return nil
}

// manualTimer lets a test fire the stream duration cap.
type manualTimer struct {
	mu sync.Mutex
	f  func()
}

func (m *manualTimer) after(_ time.Duration, f func()) func() bool {
	m.mu.Lock()
	m.f = f
	m.mu.Unlock()
	return func() bool { return true }
}

func (m *manualTimer) fire() {
	m.mu.Lock()
	f := m.f
	m.mu.Unlock()
	if f != nil {
		f()
	}
}
