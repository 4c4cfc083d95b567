package scan

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Annotations understood on scanned objects. The reason is mandatory: an
// ignore annotation without one suppresses nothing.
const (
	AnnotationIgnore       = "warden.dev/ignore"
	AnnotationIgnoreReason = "warden.dev/ignore-reason"
)

// Scanner evaluates the rules. It is immutable after New and safe for
// concurrent use: the admission webhook shares one across requests.
type Scanner struct {
	cfg      Config
	log      *slog.Logger
	pss      *pssEvaluator
	podIdx   map[string]podPaths
	known    map[string]bool
	rego     *regoEngine
	disabled map[string]bool
	enabled  map[string]bool
}

// New prepares a Scanner: the PSS checks for the configured level and
// version, and the Rego queries (built-in plus cfg.RulesDir), once.
// log may be nil.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Scanner, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("scan: config: %w", err)
	}
	lv, err := cfg.pssLevelVersion()
	if err != nil {
		return nil, fmt.Errorf("scan: pss: %w", err)
	}
	pss, err := newPSSEvaluator(lv)
	if err != nil {
		return nil, err
	}
	re, err := newRegoEngine(ctx, cfg.RulesDir)
	if err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	s := &Scanner{cfg: cfg, log: log, pss: pss, podIdx: newPodPathIndex(cfg.PodSpecPaths), rego: re,
		known: map[string]bool{}, disabled: map[string]bool{}, enabled: map[string]bool{}}
	for _, k := range append(append([]string{}, builtinKnownKinds...), cfg.KnownKinds...) {
		s.known[k] = true
	}
	for k := range s.podIdx {
		s.known[k] = true
	}
	for _, id := range cfg.Disable {
		s.disabled[id] = true
	}
	for _, id := range cfg.Enable {
		s.enabled[id] = true
	}
	return s, nil
}

// Result is everything one scan produced.
type Result struct {
	// Findings, sorted by file, line and rule; suppressed ones included.
	Findings []Finding
	// Errors are inputs (or parts of them) that could not be scanned.
	Errors []*InputError
	// Objects counts Kubernetes objects and Dockerfiles checked.
	Objects int
}

// Failed reports whether an unsuppressed finding is at or above min.
func (r *Result) Failed(min Severity) bool {
	for i := range r.Findings {
		if !r.Findings[i].Suppressed && r.Findings[i].Severity >= min {
			return true
		}
	}
	return false
}

// session is the state of one scan: findings so far and the compact
// cross-object index (Services, NetworkPolicies, bindings, AI workloads)
// that the exposure and namespace rules need after all input is read.
// Whole objects are not kept, so memory grows with the index only.
type session struct {
	ctx       context.Context
	s         *Scanner
	res       Result
	idx       crossIndex
	admission bool // single-object view: rules that need the whole input are skipped
	progress  func(objects int)
	// cur is the object being checked, for annotation suppression.
	curAnn map[string]string
}

func (s *Scanner) newSession(ctx context.Context) *session {
	return &session{ctx: ctx, s: s, idx: newCrossIndex()}
}

func (s *Scanner) ruleOn(id string) bool {
	if s.disabled[id] {
		return false
	}
	if r, ok := goRules[id]; ok && r.OptIn {
		return s.cfg.AllRules || s.enabled[id]
	}
	return true
}

// emit reports a built-in Go rule against o.
func (ss *session) emit(o *Object, id string, line int, msg string) {
	if !ss.s.ruleOn(id) {
		return
	}
	ss.add(o.Annotations, o.finding(goRules[id], line, msg))
}

// add records f, applying annotation suppression from ann.
func (ss *session) add(ann map[string]string, f Finding) {
	if ss.s.disabled[f.RuleID] {
		return
	}
	ss.annotationSuppress(ann, &f)
	ss.res.Findings = append(ss.res.Findings, f)
}

func (ss *session) fail(e *InputError) { ss.res.Errors = append(ss.res.Errors, e) }

// addObject checks one object as soon as it is decoded.
func (ss *session) addObject(o *Object) {
	defer func() { o.node = nil }()
	ss.res.Objects++
	if ss.progress != nil && ss.res.Objects%500 == 0 {
		ss.progress(ss.res.Objects)
	}
	gk := o.GroupKind()
	if !ss.s.known[gk] {
		ss.fail(&InputError{File: o.File, Line: o.Line, Err: fmt.Errorf("unknown kind %s (%s %s): only user Rego rules were applied; declare it in the config under knownKinds, or podSpecPaths if it carries pods", gk, o.APIVersion, o.Name)})
	}
	pods, err := extractPods(o, ss.s.podIdx)
	if err != nil {
		ss.fail(&InputError{File: o.File, Line: o.Line, Err: fmt.Errorf("%s %s: %w", o.Kind, o.Name, err)})
	}
	var cands []aiCandidate
	for i := range pods {
		t := &pods[i]
		for _, f := range ss.s.pss.findings(o, t) {
			ss.add(o.Annotations, f)
		}
		pc := ss.detectAI(o, t)
		cands = append(cands, pc...)
		serving := len(pc) > 0 || podRequestsGPU(t.Spec) || o.Group() == "serving.kserve.io"
		ss.checkContainers(o, t, serving)
	}
	if len(pods) > 0 {
		ss.idx.addWorkload(o, pods, cands)
	}
	switch gk {
	case "ConfigMap":
		ss.checkConfigMap(o)
	case "serving.kserve.io/InferenceService":
		ss.checkInferenceService(o)
	}
	ss.idx.addObject(o)
	// The built-in Kubernetes Rego rules only read RBAC objects; with no
	// user rules, other kinds skip the evaluation (most of the cost).
	if ss.s.cfg.RulesDir != "" || o.Group() == "rbac.authorization.k8s.io" {
		ss.evalRegoObject(o)
	}
}

func (ss *session) evalRegoObject(o *Object) {
	v, err := ast.InterfaceToValue(o.Raw)
	if err != nil {
		ss.fail(&InputError{File: o.File, Line: o.Line, Err: fmt.Errorf("rego input: %w", err)})
		return
	}
	rs, err := ss.s.rego.eval(ss.ctx, &ss.s.rego.k8s, v)
	if err != nil {
		ss.fail(&InputError{File: o.File, Line: o.Line, Err: fmt.Errorf("rego: %w", err)})
	}
	for i := range rs {
		line := o.Line
		if len(rs[i].Path) > 0 {
			line = o.lineOf(normalizePath(rs[i].Path)...)
		}
		f, err := rs[i].toFinding(line)
		if err != nil {
			ss.fail(&InputError{File: o.File, Line: line, Err: err})
		}
		f.File, f.Origin, f.Kind, f.Namespace, f.Name = o.File, o.Origin, o.Kind, o.Namespace, o.Name
		ss.add(o.Annotations, f)
	}
}

// normalizePath turns JSON numbers from Rego into list indices.
func normalizePath(p []any) []any {
	out := make([]any, len(p))
	for i, s := range p {
		switch v := s.(type) {
		case float64:
			out[i] = int(v)
		default:
			out[i] = v
		}
	}
	return out
}

// finish runs the cross-object rules, applies config suppressions (which
// win over annotations) and sorts the findings.
func (ss *session) finish() *Result {
	if !ss.admission {
		ss.crossRules()
	}
	ss.intrinsicAIRules()
	for i := range ss.res.Findings {
		ss.configSuppress(&ss.res.Findings[i])
	}
	slices.SortStableFunc(ss.res.Findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.RuleID, b.RuleID), cmp.Compare(a.Message, b.Message))
	})
	slices.SortStableFunc(ss.res.Errors, func(a, b *InputError) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
	return &ss.res
}

func (ss *session) annotationSuppress(ann map[string]string, f *Finding) {
	if ss.s.cfg.Strict || ss.s.cfg.Annotations.Disabled || len(ann) == 0 {
		return
	}
	ids, ok := ann[AnnotationIgnore]
	if !ok {
		return
	}
	reason := strings.TrimSpace(ann[AnnotationIgnoreReason])
	if reason == "" {
		return
	}
	for _, p := range ss.s.cfg.Annotations.Protected {
		if matchRule(p, f.RuleID) {
			return
		}
	}
	for _, id := range strings.Split(ids, ",") {
		if matchRule(strings.TrimSpace(id), f.RuleID) {
			f.Suppressed, f.SuppressedBy, f.SuppressionReason = true, "annotation", reason
			return
		}
	}
}

func (ss *session) configSuppress(f *Finding) {
	for _, sp := range ss.s.cfg.Suppressions {
		if !matchRule(sp.Rule, f.RuleID) {
			continue
		}
		if sp.Kind != "" && sp.Kind != f.Kind {
			continue
		}
		if sp.Namespace != "" && sp.Namespace != f.Namespace {
			continue
		}
		if sp.Name != "" {
			if ok, _ := path.Match(sp.Name, f.Name); !ok {
				continue
			}
		}
		if sp.File != "" {
			if ok, _ := path.Match(sp.File, f.File); !ok {
				continue
			}
		}
		f.Suppressed, f.SuppressedBy, f.SuppressionReason = true, "config", sp.Reason
		return
	}
}

// ScanReader scans one stream of Kubernetes YAML/JSON named name.
func (s *Scanner) ScanReader(ctx context.Context, r io.Reader, name string) *Result {
	ss := s.newSession(ctx)
	decodeStream(r, name, "", ss.addObject, ss.fail)
	return ss.finish()
}

// EvaluateObject checks one object outside of any file, as the admission
// webhook sees it. Rules that need the rest of the input (NetworkPolicy
// coverage, Services in front of a workload, RoleBindings of a
// ServiceAccount) are skipped; exposure visible in the object itself
// (hostNetwork, hostPort, a RayCluster's serviceType) still counts.
func (s *Scanner) EvaluateObject(ctx context.Context, raw map[string]any, name string) *Result {
	ss := s.newSession(ctx)
	ss.admission = true
	o := &Object{Raw: raw, File: name}
	o.APIVersion = getString(raw, "apiVersion")
	o.Kind = getString(raw, "kind")
	o.Name = getString(raw, "metadata", "name")
	o.Namespace = getString(raw, "metadata", "namespace")
	o.Labels = stringMap(getMap(raw, "metadata", "labels"))
	o.Annotations = stringMap(getMap(raw, "metadata", "annotations"))
	if o.APIVersion == "" || o.Kind == "" {
		ss.fail(&InputError{File: name, Err: fmt.Errorf("not a Kubernetes object: apiVersion and kind are required")})
		return ss.finish()
	}
	ss.addObject(o)
	return ss.finish()
}
