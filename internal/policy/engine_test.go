package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
)

var fixedNow = time.Date(2026, 11, 23, 17, 0, 0, 0, time.UTC)

// newEngine builds an engine with a fixed clock and, unless the test says
// otherwise, no Rego tests on load. Unless a test sets one, the timeout is
// generous: tests run on loaded machines and must not fail
// on a slow evaluation (TestFailClosed sets its own for the timeout case).
func newEngine(t testing.TB, cfg config.Policy) *Engine {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Minute
	}
	if cfg.TestOnLoad == nil {
		// The library's Rego suite runs in TestCheckEmbeddedWithExample and
		// TestTestOnLoadOff; running it for every engine only slows -race.
		off := false
		cfg.TestOnLoad = &off
	}
	e, err := New(context.Background(), cfg, "", nil, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.now = func() time.Time { return fixedNow }
	return e
}

func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestExampleRoles checks policies/roles.example.yaml does what it says.
func TestExampleRoles(t *testing.T) {
	e := newEngine(t, config.Policy{Data: []string{"../../policies/roles.example.yaml"}})
	call := func(id, backend, action string) *Input {
		return &Input{Subject: Subject{SpiffeID: id}, Resource: map[string]any{"kind": "http", "backend": backend}, Action: action}
	}
	tests := []struct {
		in      *Input
		allow   bool
		reasons []string
	}{
		{call("spiffe://example.org/agent/support", "llm", "invoke"), true, []string{"allowed_by_role:support-reader"}},
		{call("spiffe://example.org/agent/support", "kb", "read"), true, []string{"allowed_by_role:support-reader"}},
		{call("spiffe://example.org/agent/support", "kb", "write"), false, []string{"no_matching_role"}},
		{call("spiffe://example.org/agent/support", "llm", "admin"), false, []string{"no_matching_role"}},
		{call("spiffe://example.org/agent/support", "mcp", "read"), false, []string{"no_matching_role"}},
		{call("spiffe://example.org/pipeline/training", "kb", "write"), true, []string{"allowed_by_role:full-access"}},
		{call("spiffe://example.org/pipeline/training", "mcp", "admin"), true, []string{"allowed_by_role:full-access"}},
		{call("spiffe://example.org/pipeline/training/x", "kb", "read"), false, []string{"no_binding_for_identity"}},
		{call("spiffe://example.org/agent/other", "llm", "invoke"), false, []string{"no_binding_for_identity"}},
		{call("spiffe://other.org/agent/support", "llm", "invoke"), false, []string{"no_binding_for_identity"}},
		{call("", "llm", "invoke"), false, []string{"no_binding_for_identity"}},
	}
	var ins []*Input
	for _, tt := range tests {
		d, err := e.Decide(context.Background(), tt.in)
		if err != nil {
			t.Fatalf("Decide(%s %s %s): %v", tt.in.Subject.SpiffeID, tt.in.Resource["backend"], tt.in.Action, err)
		}
		want := protocol.Decision{Allow: tt.allow, Reasons: tt.reasons}
		if diff := cmp.Diff(want, d); diff != "" {
			t.Errorf("Decide(%s %s %s) (-want +got):\n%s", tt.in.Subject.SpiffeID, tt.in.Resource["backend"], tt.in.Action, diff)
		}
		ins = append(ins, tt.in)
	}
	// The batch path must agree call for call.
	ds, err := e.DecideMany(context.Background(), ins)
	if err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		want := protocol.Decision{Allow: tt.allow, Reasons: tt.reasons}
		if diff := cmp.Diff(want, ds[i]); diff != "" {
			t.Errorf("DecideMany[%d] (-want +got):\n%s", i, diff)
		}
	}
	if !e.Status().FastPath {
		t.Error("the embedded library should enable the batch fast path")
	}
}

type goldenCase struct {
	Input json.RawMessage `json:"input"`
	Want  struct {
		Allow       bool           `json:"allow"`
		Reasons     []string       `json:"reasons"`
		Obligations map[string]any `json:"obligations"`
	} `json:"want"`
}

func loadGolden(t testing.TB) map[string]goldenCase {
	t.Helper()
	files, err := filepath.Glob("testdata/decisions/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	out := map[string]goldenCase{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c goldenCase
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		dec.UseNumber()
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = c
	}
	return out
}

// TestGolden runs testdata/decisions (one case per file) through Decide and
// DecideMany with the embedded library and testdata/data/roles.yaml.
func TestGolden(t *testing.T) {
	e := newEngine(t, config.Policy{Data: []string{"testdata/data/roles.yaml"}})
	for name, c := range loadGolden(t) {
		t.Run(name, func(t *testing.T) {
			in, err := ParseInput(c.Input)
			if err != nil {
				t.Fatal(err)
			}
			want := protocol.Decision{Allow: c.Want.Allow, Reasons: c.Want.Reasons}
			if c.Want.Obligations != nil {
				want.Obligations = normalize(t, c.Want.Obligations).(map[string]any)
			}
			d, err := e.Decide(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, normalizeDecision(t, d)); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
			ds, err := e.DecideMany(context.Background(), []*Input{in, in})
			if err != nil {
				t.Fatal(err)
			}
			for i := range ds {
				if diff := cmp.Diff(want, normalizeDecision(t, ds[i])); diff != "" {
					t.Errorf("DecideMany[%d] (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

// normalize round-trips through JSON so numbers compare as float64.
func normalize(t testing.TB, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func normalizeDecision(t testing.TB, d protocol.Decision) protocol.Decision {
	if d.Obligations != nil {
		d.Obligations = normalize(t, d.Obligations).(map[string]any)
	}
	return d
}

// TestFailClosed checks every way an evaluation can fail denies, with the
// documented reason and a non-nil error.
func TestFailClosed(t *testing.T) {
	tests := []struct {
		name     string
		rego     string
		timeout  time.Duration
		reason   string
		sentinel error
	}{
		{"undefined", `package warden.authz
decision := {"allow": true} if input.action == "never"`, 0, ReasonUndefined, ErrUndefined},
		{"allow not boolean", `package warden.authz
decision := {"allow": "true", "reasons": []}`, 0, ReasonError, ErrMalformed},
		{"allow missing", `package warden.authz
decision := {"reasons": ["x"]}`, 0, ReasonError, ErrMalformed},
		{"not an object", `package warden.authz
decision := true`, 0, ReasonError, ErrMalformed},
		{"reasons not strings", `package warden.authz
decision := {"allow": true, "reasons": [1]}`, 0, ReasonError, ErrMalformed},
		{"reasons not array", `package warden.authz
decision := {"allow": true, "reasons": "ok"}`, 0, ReasonError, ErrMalformed},
		{"obligations not object", `package warden.authz
decision := {"allow": true, "obligations": ["tenant"]}`, 0, ReasonError, ErrMalformed},
		{"builtin error", `package warden.authz
decision := {"allow": to_number(input.action) > 0}`, 0, ReasonError, nil},
		{"conflict", `package warden.authz
decision := {"allow": true} if input.action == "read"
decision := {"allow": false} if input.operation == "GET"`, 0, ReasonError, nil},
		{"timeout", `package warden.authz
decision := {"allow": count([x | some x in numbers.range(1, 100000000)]) > 0}`, 10 * time.Millisecond, ReasonTimeout, ErrTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"p.rego": tt.rego})
			e := newEngine(t, config.Policy{Paths: []string{dir}, Timeout: tt.timeout})
			in := &Input{Subject: Subject{SpiffeID: "spiffe://example.org/a"}, Action: "read", Operation: "GET"}
			d, err := e.Decide(context.Background(), in)
			if err == nil {
				t.Fatalf("Decide = %+v, nil error; want an error", d)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("error %v is not %v", err, tt.sentinel)
			}
			want := protocol.Decision{Allow: false, Reasons: []string{tt.reason}}
			if diff := cmp.Diff(want, d); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
			ds, err := e.DecideMany(context.Background(), []*Input{in})
			if err == nil || len(ds) != 1 || ds[0].Allow {
				t.Errorf("DecideMany = %+v, %v; want one deny and an error", ds, err)
			}
		})
	}
}

func TestDenyWithoutReasonGetsOne(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"p.rego": `package warden.authz
decision := {"allow": false, "obligations": {"x": 1}}`})
	e := newEngine(t, config.Policy{Paths: []string{dir}})
	d, err := e.Decide(context.Background(), &Input{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(protocol.Decision{Reasons: []string{ReasonDenied}}, d); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestInputErrorsDeny(t *testing.T) {
	e := newEngine(t, config.Policy{Data: []string{"../../policies/roles.example.yaml"}})
	in := &Input{
		Subject:  Subject{SpiffeID: "spiffe://example.org/pipeline/training"},
		Resource: map[string]any{"backend": "llm", "bad": make(chan int)},
		Action:   "invoke",
	}
	d, err := e.Decide(context.Background(), in)
	if !errors.Is(err, ErrInput) || d.Allow {
		t.Errorf("Decide = %+v, %v; want deny and ErrInput", d, err)
	}
	ds, err := e.DecideMany(context.Background(), []*Input{in})
	if !errors.Is(err, ErrInput) || ds[0].Allow {
		t.Errorf("DecideMany = %+v, %v; want deny and ErrInput", ds, err)
	}
}

// TestStrictNumbersInInput: the numbers protocols parse (jsonstrict.Number,
// e.g. a Qdrant point id or an MCP tool argument) reach Rego as numbers.
func TestStrictNumbersInInput(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"p.rego": `package warden.authz
decision := {"allow": input.resource.point_id == 42, "reasons": ["n"]}`})
	e := newEngine(t, config.Policy{Paths: []string{dir}})
	in := &Input{Resource: map[string]any{"point_id": jsonstrict.Number("42")}}
	if d, err := e.Decide(context.Background(), in); err != nil || !d.Allow {
		t.Errorf("Decide = %+v, %v", d, err)
	}
	if ds, err := e.DecideMany(context.Background(), []*Input{in}); err != nil || !ds[0].Allow {
		t.Errorf("DecideMany = %+v, %v", ds, err)
	}
}

// TestEvalTime checks Rego's clock is the request's time.
func TestEvalTime(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"p.rego": `package warden.authz
decision := {"allow": time.now_ns() == time.parse_rfc3339_ns(input.time), "reasons": [input.time]}`})
	e := newEngine(t, config.Policy{Paths: []string{dir}})
	at := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	d, err := e.Decide(context.Background(), &Input{Time: at})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Allow || d.Reasons[0] != "2030-01-02T03:04:05.000000006Z" {
		t.Errorf("Decide = %+v", d)
	}
	d, err = e.Decide(context.Background(), &Input{}) // zero time: the engine's clock
	if err != nil || !d.Allow || d.Reasons[0] != "2026-11-23T17:00:00Z" {
		t.Errorf("Decide = %+v, %v", d, err)
	}
}

// TestLoadRejects checks what New refuses, and that the errors say where.
func TestLoadRejects(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		data  []string
		want  []string // substrings of the error
	}{
		{"parse error names file and line", map[string]string{"p.rego": "package warden.authz\n\ndecision := {\"allow\": true,, }\n"}, nil,
			[]string{"p.rego:3", "rego_parse_error"}},
		{"compile error names file and line", map[string]string{"p.rego": "package warden.authz\n\ndecision := x if {\n\tx := undefined_fn(1)\n}\n"}, nil,
			[]string{"p.rego:4", "rego_type_error"}},
		{"every compile error", map[string]string{
			"a.rego": "package warden.authz\n\ndecision := y\n",
			"b.rego": "package other\n\nz := q\n",
		}, nil, []string{"a.rego:3", "b.rego:3"}},
		{"failing rego test", map[string]string{
			"p.rego":      "package warden.authz\n\ndecision := {\"allow\": true}\n",
			"p_test.rego": "package warden.authz_test\n\nimport data.warden.authz\n\ntest_denies if {\n\tnot authz.decision.allow\n}\n",
		}, nil, []string{"test_denies", "p_test.rego:5", "failed"}},
		{"no query rule", map[string]string{"p.rego": "package warden.other\n\ndecision := {\"allow\": true}\n"}, nil,
			[]string{"data.warden.authz.decision", "no rule"}},
		{"no rego files", map[string]string{"README": "x"}, nil, []string{"no .rego files"}},
		{"bad yaml names line", nil, []string{"roles.yaml:warden:\n  bindings: [\n"}, []string{"roles.yaml", "line"}},
		{"duplicate yaml key", nil, []string{"roles.yaml:warden:\n  roles: {}\n  roles: {}\n"}, []string{"line 3", "duplicate key"}},
		{"duplicate json key", nil, []string{`roles.json:{"warden": {"roles": {}, "roles": {}}}`}, []string{"roles.json", "duplicate key"}},
		{"data not an object", nil, []string{"roles.yaml:- a\n"}, []string{"top level must be an object"}},
		{"data check", nil, []string{"roles.yaml:warden:\n  bindings:\n    spiffe://example.org/a: [ghost]\n  roles: {}\n"},
			[]string{`role "ghost" is not defined`}},
		{"conflicting data files", nil, []string{"a.yaml:warden: {roles: {r: {permissions: []}}}", "b.yaml:warden: {roles: {r: {permissions: []}}}"},
			[]string{"data.warden.roles.r", "a.yaml", "b.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := config.Policy{}
			if tt.files != nil {
				writeFiles(t, filepath.Join(dir, "rego"), tt.files)
				cfg.Paths = []string{"rego"}
			}
			for _, d := range tt.data {
				name, src, _ := strings.Cut(d, ":")
				writeFiles(t, dir, map[string]string{name: src})
				cfg.Data = append(cfg.Data, name)
			}
			_, err := New(context.Background(), cfg, dir, nil, nil)
			if err == nil {
				t.Fatal("New succeeded; want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if errs := Check(context.Background(), cfg, dir); len(errs) == 0 {
				t.Error("Check found no problem")
			}
		})
	}
}

func TestTestOnLoadOff(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"p.rego":      "package warden.authz\n\ndecision := {\"allow\": true}\n",
		"p_test.rego": "package warden.authz_test\n\ntest_fails if { false }\n",
	})
	off := false
	if _, err := New(context.Background(), config.Policy{Paths: []string{dir}, TestOnLoad: &off}, "", nil, nil); err != nil {
		t.Fatalf("New with TestOnLoad off: %v", err)
	}
	if _, err := New(context.Background(), config.Policy{Paths: []string{dir}}, "", nil, nil); err == nil {
		t.Fatal("New with TestOnLoad default: want the failing test to reject the policy")
	}
	errs := Check(context.Background(), config.Policy{Paths: []string{dir}, TestOnLoad: &off}, "")
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "test_fails") {
		t.Errorf("Check = %v; want the failing test even with TestOnLoad off", errs)
	}
}

func TestCheckEmbeddedWithExample(t *testing.T) {
	if errs := Check(context.Background(), config.Policy{Data: []string{"roles.example.yaml"}}, "../../policies"); len(errs) != 0 {
		t.Errorf("Check = %v", errs)
	}
	results, err := RunTests(context.Background(), config.Policy{}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 20 {
		t.Errorf("embedded library ran %d tests; want its whole suite", len(results))
	}
	for _, r := range results {
		if !r.Pass {
			t.Errorf("%s (%s) failed: %v", r.Name, r.Location, r.Err)
		}
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	allow := "package warden.authz\n\ndecision := {\"allow\": true, \"reasons\": [\"v1\"]}\n"
	writeFiles(t, dir, map[string]string{"p.rego": allow})
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	e, err := New(context.Background(), config.Policy{Paths: []string{dir}, Timeout: time.Minute}, "", slog.New(slog.NewTextHandler(&logs, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	v1 := e.Version()
	decide := func() string {
		d, err := e.Decide(context.Background(), &Input{})
		if err != nil {
			t.Fatal(err)
		}
		return d.Reasons[0]
	}

	writeFiles(t, dir, map[string]string{"p.rego": "package warden.authz\n\ndecision := {\"allow\": true,, }\n"})
	if err := e.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "p.rego:3") {
		t.Fatalf("Reload of a broken policy = %v; want a file:line error", err)
	}
	if e.Version() != v1 || decide() != "v1" {
		t.Fatal("a rejected reload replaced the serving version")
	}
	st := e.Status()
	if st.Failures != 1 || st.LastError == "" || st.Version != v1 {
		t.Errorf("Status after failure = %+v", st)
	}
	if got := counterValue(t, e.metrics.reloads.WithLabelValues("failure")); got != 1 {
		t.Errorf("reloads{failure} = %v", got)
	}
	if !strings.Contains(logs.String(), "policy reload rejected") {
		t.Errorf("failure not logged: %s", logs.String())
	}

	writeFiles(t, dir, map[string]string{"p.rego": strings.Replace(allow, "v1", "v2", 1)})
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e.Version() == v1 || decide() != "v2" {
		t.Error("reload did not switch to the new version")
	}
	if st := e.Status(); st.LastError != "" || st.Reloads != 2 || st.Version != e.Version() {
		t.Errorf("Status after success = %+v", st)
	}
	if got := counterValue(t, e.metrics.reloads.WithLabelValues("success")); got != 1 {
		t.Errorf("reloads{success} = %v", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]int{}
	for _, mf := range mfs {
		series[mf.GetName()] = len(mf.GetMetric())
	}
	if diff := cmp.Diff(map[string]int{"warden_policy_reloads_total": 2, "warden_policy_decisions_total": 3, "warden_policy_eval_seconds": 1}, series); diff != "" {
		t.Errorf("registered series (-want +got):\n%s", diff)
	}
	if got := counterValue(t, e.metrics.allow); got != 2 {
		t.Errorf("decisions{allow} = %v; want 2", got)
	}
	// A second engine on the same registry shares the collectors.
	if _, err := New(context.Background(), config.Policy{Paths: []string{dir}}, "", nil, reg); err != nil {
		t.Errorf("second engine on one registry: %v", err)
	}
}

func TestReloadData(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"roles.yaml": "warden:\n  bindings: {}\n  roles: {}\n"})
	e := newEngine(t, config.Policy{Data: []string{filepath.Join(dir, "roles.yaml")}})
	in := &Input{Subject: Subject{SpiffeID: "spiffe://example.org/a"}, Resource: map[string]any{"backend": "llm"}, Action: "invoke"}
	if d, _ := e.Decide(context.Background(), in); d.Allow {
		t.Fatal("allowed before the binding exists")
	}
	writeFiles(t, dir, map[string]string{"roles.yaml": "warden:\n  bindings: {spiffe://example.org/a: [r]}\n  roles: {r: {permissions: [{backend: llm, actions: [invoke]}]}}\n"})
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d, err := e.Decide(context.Background(), in); err != nil || !d.Allow {
		t.Errorf("after reload: %+v, %v", d, err)
	}
}

func TestWatch(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"rego/p.rego": "package warden.authz\n\ndecision := {\"allow\": false, \"reasons\": [data.reason]}\n",
		"data.json":   `{"reason": "v1"}`,
	})
	e := newEngine(t, config.Policy{Paths: []string{filepath.Join(dir, "rego")}, Data: []string{filepath.Join(dir, "data.json")}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Watch(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitReason := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			d, _ := e.Decide(context.Background(), &Input{})
			if d.Reasons[0] == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("reason = %q; want %q after the change", d.Reasons[0], want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(100 * time.Millisecond) // let the watcher register
	writeFiles(t, dir, map[string]string{"data.json": `{"reason": "v2"}`})
	waitReason("v2")
	// A new Rego file in a new subdirectory is picked up too.
	writeFiles(t, dir, map[string]string{"rego/sub/q.rego": "package warden.extra\n\nx := 1\n"})
	deadline := time.Now().Add(20 * time.Second)
	for e.Status().Reloads < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if e.Status().Reloads < 2 {
		t.Error("new Rego file did not trigger a reload")
	}
}

func TestWatchReturnsOnCancel(t *testing.T) {
	e := newEngine(t, config.Policy{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.Watch(ctx) // must return
}

func TestDecisionsMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	e, err := New(context.Background(), config.Policy{Data: []string{"../../policies/roles.example.yaml"}, Timeout: time.Minute}, "", nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	allow := &Input{Subject: Subject{SpiffeID: "spiffe://example.org/pipeline/training"}, Resource: map[string]any{"backend": "x"}, Action: "read"}
	deny := &Input{Subject: Subject{SpiffeID: "spiffe://example.org/nobody"}, Action: "read"}
	e.Decide(context.Background(), allow)
	e.DecideMany(context.Background(), []*Input{allow, deny, deny})
	if a, d := counterValue(t, e.metrics.allow), counterValue(t, e.metrics.deny); a != 2 || d != 2 {
		t.Errorf("allow=%v deny=%v; want 2 and 2", a, d)
	}
}

func TestVersionStable(t *testing.T) {
	a := newEngine(t, config.Policy{Data: []string{"../../policies/roles.example.yaml"}})
	b := newEngine(t, config.Policy{Data: []string{"../../policies/roles.example.yaml"}})
	c := newEngine(t, config.Policy{})
	if a.Version() != b.Version() || a.Version() == c.Version() || len(a.Version()) != 16 {
		t.Errorf("versions %q %q %q: want equal for equal inputs, different for different data", a.Version(), b.Version(), c.Version())
	}
}

func TestCustomPolicyHasNoFastPath(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile("../../policies/warden/authz.rego")
	if err != nil {
		t.Fatal(err)
	}
	// The library plus one extra rule in its package: the batch path must
	// not be used, and DecideMany must still honour the extra rule.
	writeFiles(t, dir, map[string]string{
		"authz.rego": string(src),
		"extra.rego": "package warden.authz\n\nroles contains \"full\" if input.subject.auth_method == \"jwt\"\n",
	})
	e := newEngine(t, config.Policy{Paths: []string{dir}})
	if e.Status().FastPath {
		t.Fatal("modified library must not use the batch path")
	}
	in := &Input{Subject: Subject{SpiffeID: "spiffe://x.org/a", AuthMethod: "jwt"}, Resource: map[string]any{"backend": "b"}, Action: "read"}
	// roles has "full" but there is no such role: no_matching_role, not no_binding.
	ds, err := e.DecideMany(context.Background(), []*Input{in})
	if err != nil || cmp.Diff([]string{"no_matching_role"}, ds[0].Reasons) != "" {
		t.Errorf("DecideMany = %+v, %v", ds, err)
	}
}

func TestNilInputDenies(t *testing.T) {
	e := newEngine(t, configExample())
	if d, err := e.Decide(context.Background(), nil); !errors.Is(err, ErrInput) || d.Allow {
		t.Errorf("Decide(nil) = %+v, %v", d, err)
	}
	ok := &Input{Subject: Subject{SpiffeID: "spiffe://example.org/pipeline/training"}, Resource: map[string]any{"backend": "kb"}, Action: "read"}
	ds, err := e.DecideMany(context.Background(), []*Input{nil, ok})
	if !errors.Is(err, ErrInput) || len(ds) != 2 || ds[0].Allow || !ds[1].Allow {
		t.Errorf("DecideMany(nil, ok) = %+v, %v", ds, err)
	}
}

func TestDecideManyEmpty(t *testing.T) {
	e := newEngine(t, config.Policy{})
	ds, err := e.DecideMany(context.Background(), nil)
	if err != nil || len(ds) != 0 {
		t.Errorf("DecideMany(nil) = %v, %v", ds, err)
	}
}

func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func configExample() config.Policy {
	return config.Policy{Data: []string{"../../policies/roles.example.yaml"}}
}

// config0 is the example library with the benchmark's bench-* roles.
func config0() config.Policy {
	return config.Policy{Data: []string{"testdata/data/bench.yaml"}}
}
