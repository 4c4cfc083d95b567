package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/wardenhq/warden/internal/protocol"
	"github.com/wardenhq/warden/policies"
)

// grantsQuery returns, for input.subject, every role and its permissions.
const grantsQuery = "data.warden.authz.grants"

var authzRef = ast.MustParseRef("data.warden.authz")

// isDefaultLibrary reports whether every rule under data.warden.authz comes
// from the embedded library's own files, unmodified. Only then is the batch
// path's Go matcher known to agree with the Rego decision.
func isDefaultLibrary(s *sources, c *ast.Compiler) bool {
	embedded := map[string]bool{}
	err := fs.WalkDir(policies.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".rego") || isTestModule(p) {
			return err
		}
		b, err := fs.ReadFile(policies.FS, p)
		embedded[string(b)] = true
		return err
	})
	if err != nil {
		return false
	}
	found := map[string]bool{}
	for name, m := range c.Modules {
		for _, r := range m.Rules {
			p := m.Package.Path.Extend(r.Head.Ref().GroundPrefix())
			if !p.HasPrefix(authzRef) && !authzRef.HasPrefix(p) {
				continue
			}
			src := string(s.raw[name])
			if !embedded[src] {
				return false
			}
			found[src] = true
		}
	}
	return len(found) == len(embedded)
}

// DecideMany decides many calls, e.g. every tool of a tools/list response.
// It returns exactly one decision per input, in order; inputs that could not
// be decided are denied and their errors joined into the returned error.
//
// With the unmodified default library it evaluates the policy once per
// distinct caller (the caller's grants) and matches each call against them
// in Go, with the library's semantics; otherwise it evaluates each call.
func (e *Engine) DecideMany(ctx context.Context, ins []*Input) ([]protocol.Decision, error) {
	out := make([]protocol.Decision, len(ins))
	v := e.cur.Load()
	var errs []error
	if v.grants == nil {
		for i, in := range ins {
			d, err := e.Decide(ctx, in)
			out[i] = d
			if err != nil {
				errs = append(errs, fmt.Errorf("item %d: %w", i, err))
			}
		}
		return out, errors.Join(errs...)
	}
	type entry struct {
		g   *callerGrants
		err error
	}
	cache := make(map[Subject]entry, 1)
	for i, in := range ins {
		if in == nil {
			out[i] = failed(ReasonError)
			e.metrics.errs.Inc()
			errs = append(errs, fmt.Errorf("item %d: %w: nil input", i, ErrInput))
			continue
		}
		subj := in.Subject.complete()
		ent, ok := cache[subj]
		if !ok {
			ent.g, ent.err = e.grants(ctx, v, subj)
			cache[subj] = ent
		}
		if ent.err != nil {
			out[i] = failed(ReasonError)
			e.metrics.errs.Inc()
			errs = append(errs, fmt.Errorf("item %d: %w", i, ent.err))
			continue
		}
		if ent.g == nil || guardsMatter(in.Guards) {
			// Grants in an unexpected shape, or a guard verdict the Go
			// matcher does not know: decide this one in full.
			d, err := e.Decide(ctx, in)
			out[i] = d
			if err != nil {
				errs = append(errs, fmt.Errorf("item %d: %w", i, err))
			}
			continue
		}
		err := checkValues(in.Resource, 0)
		if err == nil {
			err = checkValues(in.Guards, 0)
		}
		if err != nil {
			out[i] = failed(ReasonError)
			e.metrics.errs.Inc()
			errs = append(errs, fmt.Errorf("item %d: policy %s: %w: %w", i, v.id, ErrInput, err))
			continue
		}
		d, err := ent.g.decide(in)
		if err != nil {
			out[i] = failed(ReasonError)
			e.metrics.errs.Inc()
			errs = append(errs, fmt.Errorf("item %d: policy %s: %w", i, v.id, err))
			continue
		}
		e.count(d)
		out[i] = d
	}
	if len(errs) > 0 {
		e.log.Error("policy batch evaluation failed for some items; denying them", "version", v.id, "failed", len(errs), "items", len(ins))
	}
	return out, errors.Join(errs...)
}

// grants evaluates the caller's grants. A nil result with a nil error means
// the grants could not be read and items must be decided in full.
func (e *Engine) grants(ctx context.Context, v *version, subj Subject) (*callerGrants, error) {
	input := ast.NewObject(ast.Item(keySubject, ast.NewTerm(e.subjects.value(subj))))
	t, _, err := e.eval(ctx, v.grants, input, e.now())
	if err != nil {
		return nil, fmt.Errorf("policy %s: grants: %w", v.id, err)
	}
	g, err := parseGrants(t.Value)
	if err != nil {
		e.log.Warn("policy grants in an unexpected shape; deciding items one by one", "version", v.id, "error", err)
		return nil, nil
	}
	return g, nil
}

// callerGrants are one caller's roles and their permissions, in the order
// the Rego library sees them (roles sorted, permissions by index).
type callerGrants struct {
	roles  []string
	grants []grant
}

type grant struct {
	role string
	// reason is "allowed_by_role:<role>", built once.
	reason    string
	backend   string
	anyAction bool
	actions   []string
	// ops nil means any operation.
	ops         []string
	resources   []constraint
	obligations ast.Object
}

type constraint struct {
	field string
	pats  []string
}

var (
	keyBackend    = ast.StringTerm("backend")
	keyActions    = ast.StringTerm("actions")
	keyOperations = ast.StringTerm("operations")
	keyResources  = ast.StringTerm("resources")
)

// parseGrants reads the grants object. Shapes the library's data check
// rejects are errors here too; the caller then falls back to full
// evaluation rather than guessing.
func parseGrants(v ast.Value) (*callerGrants, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("grants: want an object, got %s", ast.ValueName(v))
	}
	g := &callerGrants{}
	for _, k := range obj.Keys() { // sorted
		role, ok := k.Value.(ast.String)
		if !ok {
			return nil, errors.New("grants: role names must be strings")
		}
		g.roles = append(g.roles, string(role))
		perms, ok := obj.Get(k).Value.(*ast.Array)
		if !ok {
			return nil, fmt.Errorf("grants[%s]: want an array", role)
		}
		for i := range perms.Len() {
			p, err := parseGrant(string(role), perms.Elem(i).Value)
			if err != nil {
				return nil, fmt.Errorf("grants[%s][%d]: %w", role, i, err)
			}
			g.grants = append(g.grants, p)
		}
	}
	return g, nil
}

func parseGrant(role string, v ast.Value) (grant, error) {
	p := grant{role: role, reason: "allowed_by_role:" + role}
	obj, ok := v.(ast.Object)
	if !ok {
		return p, errors.New("want an object")
	}
	b, ok := obj.Get(keyBackend).Value.(ast.String)
	if obj.Get(keyBackend) == nil || !ok {
		return p, errors.New("backend: want a string")
	}
	p.backend = string(b)
	at := obj.Get(keyActions)
	if at == nil {
		return p, errors.New("actions: missing")
	}
	var err error
	if p.actions, err = stringArray(at.Value); err != nil {
		return p, fmt.Errorf("actions: %w", err)
	}
	p.anyAction = slices.Contains(p.actions, "*")
	if ot := obj.Get(keyOperations); ot != nil {
		if _, null := ot.Value.(ast.Null); !null {
			if p.ops, err = stringArray(ot.Value); err != nil {
				return p, fmt.Errorf("operations: %w", err)
			}
			if p.ops == nil {
				p.ops = []string{} // present and empty: nothing matches
			}
		}
	}
	if rt := obj.Get(keyResources); rt != nil {
		ro, ok := rt.Value.(ast.Object)
		if !ok {
			return p, errors.New("resources: want an object")
		}
		for _, f := range ro.Keys() {
			fs, ok := f.Value.(ast.String)
			if !ok {
				return p, errors.New("resources: field names must be strings")
			}
			pats, err := stringArray(ro.Get(f).Value)
			if err != nil {
				return p, fmt.Errorf("resources.%s: %w", fs, err)
			}
			p.resources = append(p.resources, constraint{field: string(fs), pats: pats})
		}
	}
	if ot := obj.Get(keyObligations); ot != nil {
		oo, ok := ot.Value.(ast.Object)
		if !ok {
			return p, errors.New("obligations: want an object")
		}
		p.obligations = oo
	}
	return p, nil
}

func stringArray(v ast.Value) ([]string, error) {
	arr, ok := v.(*ast.Array)
	if !ok {
		return nil, fmt.Errorf("want an array, got %s", ast.ValueName(v))
	}
	var out []string
	for i := range arr.Len() {
		s, ok := arr.Elem(i).Value.(ast.String)
		if !ok {
			return nil, fmt.Errorf("[%d]: want a string", i)
		}
		out = append(out, string(s))
	}
	return out, nil
}

// coarseActions are what "*" grants, as in the library.
func coarseAction(a string) bool {
	return a == protocol.ActionRead || a == protocol.ActionWrite || a == protocol.ActionInvoke || a == protocol.ActionAdmin
}

// decide mirrors data.warden.authz.decision for one call.
func (g *callerGrants) decide(in *Input) (protocol.Decision, error) {
	if len(g.roles) == 0 {
		return protocol.Decision{Reasons: []string{"no_binding_for_identity"}}, nil
	}
	var buf [8]*grant // most calls match one or two permissions
	matched := buf[:0]
	for i := range g.grants {
		ok, err := g.grants[i].permits(in)
		if err != nil {
			return protocol.Decision{}, err
		}
		if ok {
			matched = append(matched, &g.grants[i])
		}
	}
	if len(matched) == 0 {
		return protocol.Decision{Reasons: []string{"no_matching_role"}}, nil
	}
	var merged ast.Object
	var conflicts []string
	for _, p := range matched {
		if p.obligations == nil || p.obligations.Len() == 0 {
			continue
		}
		if merged == nil {
			merged = ast.NewObject()
		}
		for _, k := range p.obligations.Keys() {
			val := p.obligations.Get(k)
			prev := merged.Get(k)
			if prev == nil {
				merged.Insert(k, val)
				continue
			}
			if ast.Compare(prev.Value, val.Value) != 0 {
				ks, ok := k.Value.(ast.String)
				if !ok {
					return protocol.Decision{}, errors.New("obligation keys must be strings")
				}
				if !slices.Contains(conflicts, string(ks)) {
					conflicts = append(conflicts, string(ks))
				}
			}
		}
	}
	if len(conflicts) > 0 {
		slices.Sort(conflicts)
		reasons := make([]string, len(conflicts))
		for i, k := range conflicts {
			reasons[i] = "obligation_conflict:" + k
		}
		return protocol.Decision{Reasons: reasons}, nil
	}
	d := protocol.Decision{Allow: true}
	for _, p := range matched { // grouped by role, roles sorted
		if n := len(d.Reasons); n == 0 || d.Reasons[n-1] != p.reason {
			d.Reasons = append(d.Reasons, p.reason)
		}
	}
	if merged != nil && merged.Len() > 0 {
		m, err := ast.JSON(merged)
		if err != nil {
			return protocol.Decision{}, fmt.Errorf("obligations: %w", err)
		}
		d.Obligations = m.(map[string]any)
	}
	return d, nil
}

// permits mirrors the library's permits(perm).
func (p *grant) permits(in *Input) (bool, error) {
	if p.backend != "*" {
		b, ok, err := resourceString(in.Resource["backend"])
		if err != nil || !ok || b != p.backend {
			return false, err
		}
	}
	if !(p.anyAction && coarseAction(in.Action)) && !slices.Contains(p.actions, in.Action) {
		return false, nil
	}
	if p.ops != nil && !anyGlob(p.ops, in.Operation) {
		return false, nil
	}
	for _, c := range p.resources {
		x, present := in.Resource[c.field]
		if !present {
			return false, nil
		}
		ok, err := valueMatches(c.pats, x)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// resourceString returns x as the policy would see it, if it is a string.
func resourceString(x any) (string, bool, error) {
	switch v := x.(type) {
	case string:
		return v, true, nil
	case nil:
		return "", false, nil
	}
	av, err := toValue(x, 1)
	if err != nil {
		return "", false, fmt.Errorf("%w: %w", ErrInput, err)
	}
	s, ok := av.(ast.String)
	return string(s), ok, nil
}

// valueMatches mirrors value_ok: a string matching a pattern, or a
// non-empty array of such strings.
func valueMatches(pats []string, x any) (bool, error) {
	switch v := x.(type) {
	case string:
		return anyGlob(pats, v), nil
	case []string:
		if len(v) == 0 {
			return false, nil
		}
		for _, s := range v {
			if !anyGlob(pats, s) {
				return false, nil
			}
		}
		return true, nil
	}
	av, err := toValue(x, 1)
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrInput, err)
	}
	switch v := av.(type) {
	case ast.String:
		return anyGlob(pats, string(v)), nil
	case *ast.Array:
		if v.Len() == 0 {
			return false, nil
		}
		for i := range v.Len() {
			s, ok := v.Elem(i).Value.(ast.String)
			if !ok || !anyGlob(pats, string(s)) {
				return false, nil
			}
		}
		return true, nil
	}
	return false, nil
}

func anyGlob(pats []string, v string) bool {
	for _, p := range pats {
		if globMatch(p, v) {
			return true
		}
	}
	return false
}

// globMatch mirrors glob_ok: exact, or a trailing "*" matching by prefix.
func globMatch(pat, v string) bool {
	if pat == v {
		return true
	}
	prefix, ok := strings.CutSuffix(pat, "*")
	return ok && strings.HasPrefix(v, prefix)
}

// grantCache keeps callers' grants for one policy version. A reload builds a
// new version and so a new, empty cache. It is bounded: when full it starts
// over, so a flood of distinct identities costs evaluations, not memory.
type grantCache struct {
	mu sync.RWMutex
	m  map[Subject]*callerGrants
}

const grantCacheMax = 8192

func (c *grantCache) get(s Subject) (*callerGrants, bool) {
	c.mu.RLock()
	g, ok := c.m[s]
	c.mu.RUnlock()
	return g, ok
}

func (c *grantCache) put(s Subject, g *callerGrants) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= grantCacheMax {
		c.m = make(map[Subject]*callerGrants, 64)
	}
	c.m[s] = g
	c.mu.Unlock()
}

// decideFast decides in with the caller's cached grants. ok is false when
// the call must be evaluated in full (grants in an unexpected shape).
func (e *Engine) decideFast(ctx context.Context, v *version, in *Input) (d protocol.Decision, ok bool, err error) {
	if guardsMatter(in.Guards) {
		return protocol.Decision{}, false, nil
	}
	subj := in.Subject.complete()
	g, hit := v.cache.get(subj)
	if !hit {
		if g, err = e.grants(ctx, v, subj); err != nil {
			d, err = e.fail(v, ReasonError, err)
			return d, true, err
		}
		if g == nil {
			return protocol.Decision{}, false, nil
		}
		v.cache.put(subj, g)
	}
	if err := checkValues(in.Resource, 0); err != nil {
		d, err = e.fail(v, ReasonError, fmt.Errorf("%w: %w", ErrInput, err))
		return d, true, err
	}
	if err := checkValues(in.Guards, 0); err != nil {
		d, err = e.fail(v, ReasonError, fmt.Errorf("%w: %w", ErrInput, err))
		return d, true, err
	}
	d, err = g.decide(in)
	if err != nil {
		d, err = e.fail(v, ReasonError, err)
		return d, true, err
	}
	e.count(d)
	return d, true, nil
}

// guardsMatter reports whether the library's guard rules (the Guardrails
// section of authz.rego) may change this decision: deny it (only when
// input.guards.blocked is true) or add the redact_prompt obligation (only
// when a secret was found). Such inputs are rare and are decided by full
// evaluation, so the Go matcher never has to know the guard rules. Anything
// but an absent or false "blocked", or any secret category, counts.
func guardsMatter(g map[string]any) bool {
	if v, ok := g["blocked"]; ok && v != false {
		return true
	}
	cats, _ := g["categories"].(map[string]any)
	_, secret := cats["secret"]
	return secret
}
