package policy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	opametrics "github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/protocol"
)

// Engine evaluates the policy. It serves one compiled, tested version at a
// time and swaps versions atomically on Reload; it is safe for concurrent use.
type Engine struct {
	cfg     resolved
	log     *slog.Logger
	metrics *metrics
	// now is the clock for inputs without a time; tests replace it.
	now func() time.Time

	cur      atomic.Pointer[version]
	subjects subjectCache

	reloadMu sync.Mutex // serializes Reload
	statusMu sync.Mutex
	status   Status
}

// Status describes the serving version and the last reload, for `warden
// check`, the admin API and logs.
type Status struct {
	// Version is the serving version's hash of modules and data.
	Version string
	// LoadedAt is when the serving version was accepted.
	LoadedAt time.Time
	// Reloads and Failures count Reload outcomes since New.
	Reloads, Failures uint64
	// LastError is the last rejected version's error ("" after a success).
	LastError string
	// LastErrorAt is when LastError happened.
	LastErrorAt time.Time
	// FastPath reports whether DecideMany can use the batch path (the
	// default library, unmodified).
	FastPath bool
}

// version is one compiled, prepared policy version.
type version struct {
	id       string
	decision rego.PreparedEvalQuery
	// grants is the default library's per-caller permissions query, nil
	// when the policy is not the unmodified default library.
	grants   *rego.PreparedEvalQuery
	loadedAt time.Time
	// cache holds callers' grants for this version (see cachedGrants).
	cache grantCache
}

// New loads, compiles, checks and prepares the policy. An empty cfg.Paths
// means the embedded default library. Relative paths are resolved against
// baseDir (the config file's directory). log nil discards; reg nil skips
// metric registration.
func New(ctx context.Context, cfg config.Policy, baseDir string, log *slog.Logger, reg prometheus.Registerer) (*Engine, error) {
	r, err := resolve(cfg, baseDir)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: r, log: log, metrics: m, now: time.Now}
	v, err := e.build(ctx)
	if err != nil {
		return nil, err
	}
	e.cur.Store(v)
	e.status = Status{Version: v.id, LoadedAt: v.loadedAt, FastPath: v.grants != nil}
	log.Info("policy loaded", "version", v.id, "fast_path", v.grants != nil)
	return e, nil
}

// build loads and checks a new version without touching the serving one.
func (e *Engine) build(ctx context.Context) (*version, error) {
	s, errs := loadSources(e.cfg)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c, errs := s.compile()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	data, err := s.dataValue()
	if err != nil {
		return nil, err
	}
	if errs := dataErrors(ctx, c, data, e.cfg.query); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if e.cfg.testOnLoad {
		results, err := runTests(ctx, s, data)
		if err != nil {
			return nil, err
		}
		if errs := testErrors(results); len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
	}
	dq, err := prepare(ctx, c, data, e.cfg.query)
	if err != nil {
		return nil, err
	}
	v := &version{id: s.version, decision: dq, loadedAt: e.now()}
	if e.cfg.query == DefaultQuery && isDefaultLibrary(s, c) {
		gq, err := prepare(ctx, c, data, grantsQuery)
		if err != nil {
			return nil, err
		}
		v.grants = &gq
	}
	return v, nil
}

// prepare compiles query against c once; evaluations reuse it.
func prepare(ctx context.Context, c *ast.Compiler, data ast.Object, query string) (rego.PreparedEvalQuery, error) {
	body, err := ast.ParseBodyWithOpts(query, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		return rego.PreparedEvalQuery{}, fmt.Errorf("policy: query %q: %w", query, err)
	}
	var ref ast.Ref
	if len(body) == 1 {
		if t, ok := body[0].Terms.(*ast.Term); ok {
			ref, _ = t.Value.(ast.Ref)
		}
	}
	if ref == nil || !ref.HasPrefix(ast.DefaultRootRef) {
		return rego.PreparedEvalQuery{}, fmt.Errorf("policy: query %q: want a reference under data", query)
	}
	if len(c.GetRulesForVirtualDocument(ref)) == 0 && len(c.GetRulesWithPrefix(ref)) == 0 {
		return rego.PreparedEvalQuery{}, fmt.Errorf("policy: query %q: no rule defines it", query)
	}
	pq, err := rego.New(
		rego.ParsedQuery(body),
		rego.Compiler(c),
		rego.Store(inmem.NewFromASTObject(data)),
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(ctx)
	if err != nil {
		return rego.PreparedEvalQuery{}, fmt.Errorf("policy: prepare %q: %w", query, err)
	}
	return pq, nil
}

// Version returns the serving version: a hash of its modules and data,
// recorded in audit records so a decision can be traced to its policy.
func (e *Engine) Version() string { return e.cur.Load().id }

// Status returns the serving version and the reload history.
func (e *Engine) Status() Status {
	e.statusMu.Lock()
	defer e.statusMu.Unlock()
	return e.status
}

// Reload loads the policy and data again. A version that fails to load,
// compile, pass its data check or its tests is rejected: the error is
// returned, logged and counted, and the last good version keeps serving.
func (e *Engine) Reload(ctx context.Context) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	v, err := e.build(ctx)
	e.statusMu.Lock()
	defer e.statusMu.Unlock()
	e.status.Reloads++
	if err != nil {
		e.status.Failures++
		e.status.LastError = err.Error()
		e.status.LastErrorAt = e.now()
		e.metrics.reloads.WithLabelValues("failure").Inc()
		e.log.Error("policy reload rejected; keeping the last good version",
			"version", e.cur.Load().id, "error", err)
		return fmt.Errorf("policy: reload: %w", err)
	}
	old := e.cur.Swap(v)
	e.status.Version, e.status.LoadedAt, e.status.FastPath = v.id, v.loadedAt, v.grants != nil
	e.status.LastError, e.status.LastErrorAt = "", time.Time{}
	e.metrics.reloads.WithLabelValues("success").Inc()
	e.log.Info("policy reloaded", "version", v.id, "previous", old.id, "fast_path", v.grants != nil)
	return nil
}

// noMetrics stops OPA from allocating per-evaluation timers nobody reads;
// Warden's own histogram times each evaluation.
var noMetrics = opametrics.NoOp()

// asTerm keeps OPA from converting results to Go values; parseDecision
// reads the AST directly.
func asTerm(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }

// Decide evaluates the policy for one call. On any failure it returns a
// deny whose only reason is policy_error, policy_timeout or
// policy_undefined, together with a non-nil error saying why.
func (e *Engine) Decide(ctx context.Context, in *Input) (protocol.Decision, error) {
	v := e.cur.Load()
	if in == nil {
		return e.fail(v, ReasonError, fmt.Errorf("%w: nil input", ErrInput))
	}
	if v.grants != nil {
		// The unmodified default library: the caller's grants come from
		// OPA once per identity and policy version; the call is matched
		// against them in Go with the library's semantics (the same path
		// as DecideMany, checked against full evaluation by
		// TestBatchMatchesDecide).
		if d, ok, err := e.decideFast(ctx, v, in); ok {
			return d, err
		}
	}
	return e.decideOPA(ctx, v, in)
}

// decideOPA evaluates the full decision query.
func (e *Engine) decideOPA(ctx context.Context, v *version, in *Input) (protocol.Decision, error) {
	now := in.Time
	if now.IsZero() {
		now = e.now()
	}
	input, err := in.value(now, &e.subjects)
	if err != nil {
		return e.fail(v, ReasonError, err)
	}
	t, reason, err := e.eval(ctx, &v.decision, input, now)
	if err != nil {
		return e.fail(v, reason, err)
	}
	d, err := parseDecision(t.Value)
	if err != nil {
		return e.fail(v, ReasonError, err)
	}
	e.count(d)
	return d, nil
}

// eval runs a prepared query with the timeout and returns its single
// result. reason classifies a failure.
func (e *Engine) eval(ctx context.Context, q *rego.PreparedEvalQuery, input ast.Value, now time.Time) (*ast.Term, string, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.timeout)
	defer cancel()
	start := time.Now()
	rs, err := q.Eval(ctx, rego.EvalParsedInput(input), rego.EvalTime(now), rego.EvalGenerateJSON(asTerm), rego.EvalMetrics(noMetrics))
	e.metrics.eval.Observe(time.Since(start).Seconds())
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && topdown.IsCancel(err) {
			return nil, ReasonTimeout, fmt.Errorf("%w after %v", ErrTimeout, e.cfg.timeout)
		}
		return nil, ReasonError, err
	}
	switch {
	case len(rs) == 0:
		return nil, ReasonUndefined, ErrUndefined
	case len(rs) > 1 || len(rs[0].Expressions) != 1:
		return nil, ReasonError, fmt.Errorf("%w: %d results", ErrMalformed, len(rs))
	}
	t, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return nil, ReasonError, fmt.Errorf("%w: result is %T", ErrMalformed, rs[0].Expressions[0].Value)
	}
	return t, "", nil
}

func (e *Engine) fail(v *version, reason string, err error) (protocol.Decision, error) {
	e.metrics.errs.Inc()
	e.log.Error("policy evaluation failed; denying", "version", v.id, "reason", reason, "error", err)
	return failed(reason), fmt.Errorf("policy %s: %w", v.id, err)
}

func (e *Engine) count(d protocol.Decision) {
	if d.Allow {
		e.metrics.allow.Inc()
	} else {
		e.metrics.deny.Inc()
	}
}
