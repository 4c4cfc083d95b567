package policy

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardenhq/warden/internal/jsonstrict"
)

// Subject is the verified caller (input.subject).
type Subject struct {
	// SpiffeID is the full ID, "spiffe://example.org/agent/support".
	SpiffeID string
	// TrustDomain is "example.org". Derived from SpiffeID when it parses.
	TrustDomain string
	// Path is "/agent/support". Derived from SpiffeID when it parses.
	Path string
	// AuthMethod is how the caller proved it: "mtls" or "jwt".
	AuthMethod string
}

// Request is the HTTP request as policy sees it (input.request): no body,
// and only the headers the gateway selected.
type Request struct {
	Method, Path, Host string
	// Headers are selected headers, names in lower case. Never credentials.
	Headers map[string]string
	// Query is the query string as parsed strictly by the gateway (the
	// canonical form of it is what is forwarded): each name's values in
	// order. Empty when there is none.
	Query map[string][]string
}

// Input is one decision's input document. See docs/policy.md.
type Input struct {
	Subject Subject
	Request Request
	// Resource is input.resource: "kind" and "backend" (set by the gateway)
	// plus protocol fields (model, tool, arguments, collection, ...). Values
	// are JSON-compatible: nil, bool, string, numbers, json.Number,
	// jsonstrict.Number, []any,
	// []string, map[string]any, map[string]string.
	Resource map[string]any
	// Action is read, write, invoke, admin or a protocol-specific action.
	Action string
	// Operation is the protocol's own verb ("chat.completions", "tools/call").
	Operation string
	// Guards are detector findings, keyed by detector.
	Guards map[string]any
	// Time is the request time; Rego's time.now_ns() returns it too, so a
	// decision can be replayed. Zero means the engine's clock.
	Time time.Time
}

// Input key terms are built once: terms used as keys are never mutated by
// evaluation, and sharing them saves an allocation per key per decision.
var (
	keySubject     = ast.StringTerm("subject")
	keySpiffeID    = ast.StringTerm("spiffe_id")
	keyTrustDomain = ast.StringTerm("trust_domain")
	keyPath        = ast.StringTerm("path")
	keyAuthMethod  = ast.StringTerm("auth_method")
	keyPatterns    = ast.StringTerm("spiffe_id_patterns")
	keyRequest     = ast.StringTerm("request")
	keyMethod      = ast.StringTerm("method")
	keyHost        = ast.StringTerm("host")
	keyHeaders     = ast.StringTerm("headers")
	keyQuery       = ast.StringTerm("query")
	keyResource    = ast.StringTerm("resource")
	keyAction      = ast.StringTerm("action")
	keyOperation   = ast.StringTerm("operation")
	keyGuards      = ast.StringTerm("guards")
	keyTime        = ast.StringTerm("time")
)

// complete returns s with TrustDomain and Path derived from SpiffeID. A
// parsable SpiffeID is authoritative: fields that disagree with it are
// replaced, so a path prefix binding can only match the caller's own path.
func (s Subject) complete() Subject {
	if s.SpiffeID == "" {
		return s
	}
	id, err := spiffeid.FromString(s.SpiffeID)
	if err != nil {
		return s // nothing but an exact binding can match a malformed ID
	}
	s.TrustDomain = id.TrustDomain().Name()
	s.Path = id.Path()
	return s
}

func (s Subject) value() ast.Value {
	s = s.complete()
	var pats []*ast.Term
	if s.SpiffeID != "" {
		pats = append(pats, ast.StringTerm(s.SpiffeID))
	}
	// Prefix patterns only for an ID that parsed: they must describe the
	// caller's own path.
	if s.SpiffeID != "" && s.SpiffeID == "spiffe://"+s.TrustDomain+s.Path {
		p := s.Path
		for {
			i := strings.LastIndexByte(p, '/')
			if i < 0 {
				break
			}
			p = p[:i]
			pats = append(pats, ast.StringTerm("spiffe://"+s.TrustDomain+p+"/*"))
		}
	}
	return ast.NewObject(
		ast.Item(keyPatterns, ast.ArrayTerm(pats...)),
		ast.Item(keySpiffeID, ast.StringTerm(s.SpiffeID)),
		ast.Item(keyTrustDomain, ast.StringTerm(s.TrustDomain)),
		ast.Item(keyPath, ast.StringTerm(s.Path)),
		ast.Item(keyAuthMethod, ast.StringTerm(s.AuthMethod)),
	)
}

// subjectCache keeps the input.subject values of recent callers: a few
// callers make most requests, and their subject documents never change.
// The values are immutable once built and shared between evaluations.
type subjectCache struct {
	m sync.Map // Subject → ast.Value
	n atomic.Int64
}

// maxCachedSubjects bounds the cache; when full it starts over.
const maxCachedSubjects = 4096

func (c *subjectCache) value(s Subject) ast.Value {
	if c == nil {
		return s.value()
	}
	if v, ok := c.m.Load(s); ok {
		return v.(ast.Value)
	}
	v := s.value()
	if c.n.Add(1) > maxCachedSubjects {
		c.m.Clear()
		c.n.Store(0)
	}
	c.m.Store(s, v)
	return v
}

// value builds the input document directly as an ast.Value, skipping the
// JSON round trip OPA would otherwise do per request.
func (in *Input) value(now time.Time, subjects *subjectCache) (ast.Value, error) {
	res, err := mapValue(in.Resource, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: resource: %w", ErrInput, err)
	}
	guards, err := mapValue(in.Guards, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: guards: %w", ErrInput, err)
	}
	headers := ast.NewObject()
	for k, v := range in.Request.Headers {
		headers.Insert(ast.StringTerm(strings.ToLower(k)), ast.StringTerm(v))
	}
	query := ast.NewObject()
	for k, vs := range in.Request.Query {
		terms := make([]*ast.Term, len(vs))
		for i, v := range vs {
			terms[i] = ast.StringTerm(v)
		}
		query.Insert(ast.StringTerm(k), ast.ArrayTerm(terms...))
	}
	req := ast.NewObject(
		ast.Item(keyMethod, ast.StringTerm(in.Request.Method)),
		ast.Item(keyPath, ast.StringTerm(in.Request.Path)),
		ast.Item(keyHost, ast.StringTerm(in.Request.Host)),
		ast.Item(keyHeaders, ast.NewTerm(headers)),
		ast.Item(keyQuery, ast.NewTerm(query)),
	)
	return ast.NewObject(
		ast.Item(keySubject, ast.NewTerm(subjects.value(in.Subject))),
		ast.Item(keyRequest, ast.NewTerm(req)),
		ast.Item(keyResource, ast.NewTerm(res)),
		ast.Item(keyAction, ast.StringTerm(in.Action)),
		ast.Item(keyOperation, ast.StringTerm(in.Operation)),
		ast.Item(keyGuards, ast.NewTerm(guards)),
		ast.Item(keyTime, ast.StringTerm(now.UTC().Format(time.RFC3339Nano))),
	), nil
}

// maxValueDepth bounds nesting in resource and guard values; protocol
// parsers cap JSON depth lower, this only keeps recursion finite.
const maxValueDepth = 128

func mapValue(m map[string]any, depth int) (ast.Object, error) {
	obj := ast.NewObjectWithCapacity(len(m))
	for k, v := range m {
		x, err := toValue(v, depth+1)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		obj.Insert(ast.StringTerm(k), ast.NewTerm(x))
	}
	return obj, nil
}

// toValue converts a JSON-compatible Go value to an ast.Value without
// reflection for the common types.
func toValue(x any, depth int) (ast.Value, error) {
	if depth > maxValueDepth {
		return nil, fmt.Errorf("nested deeper than %d", maxValueDepth)
	}
	switch v := x.(type) {
	case nil:
		return ast.Null{}, nil
	case bool:
		return ast.Boolean(v), nil
	case string:
		return ast.String(v), nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%v is not a JSON number", v)
		}
		return ast.Number(strconv.FormatFloat(v, 'g', -1, 64)), nil
	case float32:
		return toValue(float64(v), depth)
	case int:
		return ast.Number(strconv.Itoa(v)), nil
	case int64:
		return ast.Number(strconv.FormatInt(v, 10)), nil
	case int32:
		return ast.Number(strconv.FormatInt(int64(v), 10)), nil
	case uint64:
		return ast.Number(strconv.FormatUint(v, 10)), nil
	case uint32:
		return ast.Number(strconv.FormatUint(uint64(v), 10)), nil
	case uint:
		return ast.Number(strconv.FormatUint(uint64(v), 10)), nil
	case json.Number:
		return numberValue(string(v))
	case jsonstrict.Number:
		// What the protocols' strict parser yields for a JSON number.
		return numberValue(string(v))
	case []any:
		terms := make([]*ast.Term, len(v))
		for i, e := range v {
			t, err := toValue(e, depth+1)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			terms[i] = ast.NewTerm(t)
		}
		return ast.NewArray(terms...), nil
	case []string:
		terms := make([]*ast.Term, len(v))
		for i, e := range v {
			terms[i] = ast.StringTerm(e)
		}
		return ast.NewArray(terms...), nil
	case map[string]any:
		return mapValue(v, depth)
	case map[string]string:
		obj := ast.NewObjectWithCapacity(len(v))
		for k, s := range v {
			obj.Insert(ast.StringTerm(k), ast.StringTerm(s))
		}
		return obj, nil
	case ast.Value:
		return v, nil
	case fmt.Stringer:
		// Number types of JSON parsers (e.g. a strict parser's own Number)
		// print as JSON numbers; anything else is refused below.
		if n, err := numberValue(v.String()); err == nil {
			return n, nil
		}
	}
	return nil, fmt.Errorf("unsupported value of type %T", x)
}

// numberValue accepts exactly the JSON number grammar.
func numberValue(s string) (ast.Value, error) {
	if !isJSONNumber(s) {
		return nil, fmt.Errorf("%q is not a JSON number", s)
	}
	return ast.Number(s), nil
}

func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	return i == len(s)
}

// checkValues reports whether m converts, without building it: the batch
// path must refuse exactly the inputs Decide refuses.
func checkValues(m map[string]any, depth int) error {
	for k, v := range m {
		if err := checkValue(v, depth+1); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

func checkValue(x any, depth int) error {
	if depth > maxValueDepth {
		return fmt.Errorf("nested deeper than %d", maxValueDepth)
	}
	switch v := x.(type) {
	case nil, bool, string, int, int64, int32, uint64, uint32, uint, []string, map[string]string, ast.Value:
		return nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%v is not a JSON number", v)
		}
		return nil
	case []any:
		for i, e := range v {
			if err := checkValue(e, depth+1); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return nil
	case map[string]any:
		return checkValues(v, depth)
	}
	_, err := toValue(x, depth)
	return err
}
