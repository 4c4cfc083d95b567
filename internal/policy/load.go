package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"gopkg.in/yaml.v3"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/policies"
)

// DefaultQuery is the decision rule of the default library.
const DefaultQuery = "data.warden.authz.decision"

// DefaultTimeout bounds one evaluation when config Policy.Timeout is zero.
const DefaultTimeout = 100 * time.Millisecond

// embeddedPrefix names the embedded library's files in errors and test
// results, so "embedded/warden/authz.rego:12" points at policies/warden.
const embeddedPrefix = "embedded/"

// maxDataBytes caps one data file; a roles file is kilobytes, a mistake
// (pointing data at a log file) should not exhaust memory.
const maxDataBytes = 64 << 20

// sources is one policy version as read from disk or the embedded library,
// before compiling.
type sources struct {
	// modules are all parsed modules by file name, tests included.
	modules map[string]*ast.Module
	// raw are the module sources by file name (hashing, fast-path check).
	raw map[string][]byte
	// data is the merged data document.
	data map[string]any
	// version hashes modules and data.
	version string
}

// resolved is a Policy config with defaults applied and paths made absolute.
type resolved struct {
	paths      []string
	data       []string
	query      string
	timeout    time.Duration
	testOnLoad bool
	watch      bool
}

func resolve(cfg config.Policy, baseDir string) (resolved, error) {
	r := resolved{
		query:      cfg.Query,
		timeout:    cfg.Timeout,
		testOnLoad: cfg.TestOnLoad == nil || *cfg.TestOnLoad,
		watch:      cfg.Watch == nil || *cfg.Watch,
	}
	if r.query == "" {
		r.query = DefaultQuery
	}
	if r.timeout == 0 {
		r.timeout = DefaultTimeout
	}
	if r.timeout < 0 {
		return r, fmt.Errorf("policy: timeout %v: must be positive", cfg.Timeout)
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) || baseDir == "" {
			return filepath.Clean(p)
		}
		return filepath.Join(baseDir, p)
	}
	for _, p := range cfg.Paths {
		r.paths = append(r.paths, abs(p))
	}
	for _, p := range cfg.Data {
		r.data = append(r.data, abs(p))
	}
	return r, nil
}

// loadSources reads and parses every module and data file. It reports every
// problem it finds, not just the first.
func loadSources(r resolved) (*sources, []error) {
	s := &sources{modules: map[string]*ast.Module{}, raw: map[string][]byte{}, data: map[string]any{}}
	var errs []error
	if len(r.paths) == 0 {
		errs = append(errs, s.addFS(policies.FS, ".", embeddedPrefix)...)
	}
	for _, p := range r.paths {
		errs = append(errs, s.addPath(p)...)
	}
	if len(s.modules) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("policy: no .rego files in %s", strings.Join(r.paths, ", ")))
	}
	origin := map[string]string{}
	for _, p := range r.data {
		doc, err := readData(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := mergeData(s.data, doc, p, "", origin); err != nil {
			errs = append(errs, err)
		}
	}
	s.version = s.hash()
	return s, errs
}

func (s *sources) addPath(p string) []error {
	st, err := os.Stat(p)
	if err != nil {
		return []error{fmt.Errorf("policy: %w", err)}
	}
	if !st.IsDir() {
		return s.addModule(p, p, os.ReadFile)
	}
	return s.addFS(os.DirFS(p), ".", p+string(filepath.Separator))
}

// addFS adds every .rego file under root in fsys, naming each prefix+path.
// Hidden directories (.git, ...) are skipped.
func (s *sources) addFS(fsys fs.FS, root, prefix string) []error {
	var errs []error
	err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, fmt.Errorf("policy: %s: %w", prefix+p, err))
			return nil
		}
		if d.IsDir() {
			if p != root && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		if path.Ext(p) != ".rego" {
			return nil
		}
		errs = append(errs, s.addModule(prefix+filepath.FromSlash(p), p, func(name string) ([]byte, error) {
			return fs.ReadFile(fsys, name)
		})...)
		return nil
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("policy: walk %s: %w", prefix, err))
	}
	return errs
}

func (s *sources) addModule(name, readPath string, read func(string) ([]byte, error)) []error {
	src, err := read(readPath)
	if err != nil {
		return []error{fmt.Errorf("policy: read %s: %w", name, err)}
	}
	m, err := ast.ParseModuleWithOpts(name, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
	if err != nil {
		return astErrors(err)
	}
	s.modules[name] = m
	s.raw[name] = src
	return nil
}

// astErrors splits OPA's error lists so each compile or parse error is
// reported on its own, as "file:line: code: message".
func astErrors(err error) []error {
	var aerrs ast.Errors
	if errors.As(err, &aerrs) {
		out := make([]error, 0, len(aerrs))
		for _, e := range aerrs {
			out = append(out, fmt.Errorf("policy: %w", e))
		}
		return out
	}
	return []error{fmt.Errorf("policy: %w", err)}
}

// readData reads one JSON or YAML data file whose top level is an object.
func readData(p string) (map[string]any, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("policy: data: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxDataBytes+1))
	if err != nil {
		return nil, fmt.Errorf("policy: data: read %s: %w", p, err)
	}
	if len(b) > maxDataBytes {
		return nil, fmt.Errorf("policy: data: %s: larger than %d bytes", p, maxDataBytes)
	}
	doc, err := ParseData(p, b)
	if err != nil {
		return nil, fmt.Errorf("policy: data: %w", err)
	}
	return doc, nil
}

// ParseData parses a data file (JSON for a .json name, else YAML) whose top
// level must be an object. Errors name the file and, for YAML, the line.
// Duplicate keys are errors in both formats: a roles file where the second
// of two identical keys silently wins is a security bug waiting to happen.
func ParseData(name string, b []byte) (map[string]any, error) {
	var doc any
	if strings.EqualFold(filepath.Ext(name), ".json") {
		v, err := parseJSONStrict(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		doc = v
	} else {
		var n yaml.Node
		if err := yaml.Unmarshal(b, &n); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		v, err := yamlValue(&n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		doc = v
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: top level must be an object", name)
	}
	return m, nil
}

// yamlValue converts a YAML node to JSON-compatible values, rejecting what
// JSON cannot express (non-string keys) and YAML's aliases, which can
// amplify a small file into a huge document.
func yamlValue(n *yaml.Node) (any, error) {
	switch n.Kind {
	case 0:
		return nil, nil // empty document
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return yamlValue(n.Content[0])
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || (k.Tag != "!!str" && k.Tag != "!!int" && k.Tag != "!!float" && k.Tag != "!!bool") {
				return nil, fmt.Errorf("line %d: keys must be strings", k.Line)
			}
			if _, dup := m[k.Value]; dup {
				return nil, fmt.Errorf("line %d: duplicate key %q", k.Line, k.Value)
			}
			x, err := yamlValue(v)
			if err != nil {
				return nil, err
			}
			m[k.Value] = x
		}
		return m, nil
	case yaml.SequenceNode:
		a := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			x, err := yamlValue(c)
			if err != nil {
				return nil, err
			}
			a = append(a, x)
		}
		return a, nil
	case yaml.ScalarNode:
		var x any
		if err := n.Decode(&x); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		switch v := x.(type) {
		case nil, bool, string, int, int64, uint64, float64:
			if f, ok := v.(float64); ok && (f != f || f > 1.7976931348623157e308 || f < -1.7976931348623157e308) {
				return nil, fmt.Errorf("line %d: %v is not a JSON number", n.Line, n.Value)
			}
			return v, nil
		default:
			// Timestamps and binary: keep the text, as JSON would.
			return n.Value, nil
		}
	case yaml.AliasNode:
		return nil, fmt.Errorf("line %d: YAML aliases are not supported", n.Line)
	}
	return nil, fmt.Errorf("line %d: unsupported YAML node", n.Line)
}

// parseJSONStrict decodes one JSON value with numbers kept exact and
// duplicate object keys rejected.
func parseJSONStrict(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := jsonValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("offset %d: trailing data after the JSON value", dec.InputOffset())
	}
	return v, nil
}

const maxJSONDepth = 128

func jsonValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, fmt.Errorf("offset %d: nested deeper than %d", dec.InputOffset(), maxJSONDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("offset %d: %w", dec.InputOffset(), err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			m := map[string]any{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("offset %d: %w", dec.InputOffset(), err)
				}
				k := kt.(string) // the decoder only yields string keys inside objects
				if _, dup := m[k]; dup {
					return nil, fmt.Errorf("offset %d: duplicate key %q", dec.InputOffset(), k)
				}
				v, err := jsonValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				m[k] = v
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("offset %d: %w", dec.InputOffset(), err)
			}
			return m, nil
		case '[':
			a := []any{}
			for dec.More() {
				v, err := jsonValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("offset %d: %w", dec.InputOffset(), err)
			}
			return a, nil
		}
		return nil, fmt.Errorf("offset %d: unexpected %v", dec.InputOffset(), t)
	default:
		return t, nil
	}
}

// mergeData merges src into dst. Objects merge recursively; the same leaf
// defined by two files is an error naming both. The parsed documents are
// this package's own, so merging in place is safe.
func mergeData(dst, src map[string]any, file, prefix string, origin map[string]string) error {
	keys := make([]string, 0, len(src))
	for k := range src {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var errs []error
	for _, k := range keys {
		v := src[k]
		p := prefix + "." + k
		old, exists := dst[k]
		if !exists {
			dst[k] = v
			origin[p] = file
			continue
		}
		om, ok1 := old.(map[string]any)
		nm, ok2 := v.(map[string]any)
		if !ok1 || !ok2 {
			errs = append(errs, fmt.Errorf("policy: data: %s: data%s is also defined in %s", file, p, originOf(origin, p)))
			continue
		}
		if err := mergeData(om, nm, file, p, origin); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func originOf(origin map[string]string, p string) string {
	for q := p; q != ""; q = q[:max(strings.LastIndexByte(q, '.'), 0)] {
		if f, ok := origin[q]; ok {
			return f
		}
	}
	return "another data file"
}

// hash identifies a version: the module names and sources, then the data
// canonically encoded (encoding/json sorts object keys).
func (s *sources) hash() string {
	h := sha256.New()
	names := make([]string, 0, len(s.raw))
	for n := range s.raw {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(h, "module %q %d\n", n, len(s.raw[n]))
		h.Write(s.raw[n])
	}
	d, err := json.Marshal(s.data)
	if err != nil {
		// Unreachable for parsed data; hash the error so versions differ.
		d = []byte(err.Error())
	}
	fmt.Fprintf(h, "data %d\n", len(d))
	h.Write(d)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func (s *sources) copyModules() map[string]*ast.Module {
	mods := make(map[string]*ast.Module, len(s.modules))
	for n, m := range s.modules {
		mods[n] = m.Copy() // compiling rewrites modules in place
	}
	return mods
}

// isTestModule reports whether a file holds Rego tests, by the convention
// opa test uses. Test modules are compiled for the tests only.
func isTestModule(name string) bool { return strings.HasSuffix(name, "_test.rego") }

// compile compiles the non-test modules for serving.
func (s *sources) compile() (*ast.Compiler, []error) {
	mods := make(map[string]*ast.Module, len(s.modules))
	for n, m := range s.modules {
		if !isTestModule(n) {
			mods[n] = m.Copy() // compiling rewrites modules in place
		}
	}
	c := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1)
	c.Compile(mods)
	if c.Failed() {
		return nil, astErrors(c.Errors)
	}
	return c, nil
}

// dataValue converts the merged data for the store.
func (s *sources) dataValue() (ast.Object, error) {
	v, err := ast.InterfaceToValue(s.data)
	if err != nil {
		return nil, fmt.Errorf("policy: data: %w", err)
	}
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, errors.New("policy: data: top level must be an object")
	}
	return obj, nil
}

// dataErrors evaluates <package of query>.data_errors, the policy's own
// check of its data. Undefined means the policy has no such check.
func dataErrors(ctx context.Context, c *ast.Compiler, data ast.Object, query string) []error {
	i := strings.LastIndexByte(query, '.')
	if i < 0 {
		return nil
	}
	q := query[:i] + ".data_errors"
	rs, err := rego.New(rego.Query(q), rego.Compiler(c), rego.Store(inmem.NewFromASTObject(data))).Eval(ctx)
	if err != nil {
		return []error{fmt.Errorf("policy: data check %s: %w", q, err)}
	}
	if len(rs) == 0 {
		return nil
	}
	msgs, ok := rs[0].Expressions[0].Value.([]any)
	if !ok {
		return []error{fmt.Errorf("policy: data check %s: want a set of strings, got %T", q, rs[0].Expressions[0].Value)}
	}
	var errs []error
	for _, m := range msgs {
		errs = append(errs, fmt.Errorf("policy: data: %v", m))
	}
	return errs
}

// TestResult is one Rego test's outcome.
type TestResult struct {
	// Name is "data.<package>.<rule>".
	Name string
	// Location is "file:line".
	Location string
	Pass     bool
	Skip     bool
	// Err is set when the test errored (not merely failed).
	Err      error
	Duration time.Duration
}

// runTests runs the test_ rules of all modules as opa test does, against
// the given data.
func runTests(ctx context.Context, s *sources, data ast.Object) ([]TestResult, error) {
	hasTests := false
	for n := range s.modules {
		if isTestModule(n) {
			hasTests = true
			break
		}
	}
	if !hasTests {
		return nil, nil
	}
	ch, err := tester.NewRunner().
		SetDefaultRegoVersion(ast.RegoV1).
		SetStore(inmem.NewFromASTObject(data)).
		SetTimeout(30*time.Second).
		SetParallel(1).
		Run(ctx, s.copyModules())
	if err != nil {
		return nil, errors.Join(astErrors(err)...)
	}
	var out []TestResult
	for r := range ch {
		tr := TestResult{
			Name:     r.Package + "." + r.Name,
			Pass:     r.Pass(),
			Skip:     r.Skip,
			Err:      r.Error,
			Duration: r.Duration,
		}
		if r.Location != nil {
			tr.Location = fmt.Sprintf("%s:%d", r.Location.File, r.Location.Row)
		}
		out = append(out, tr)
	}
	slices.SortFunc(out, func(a, b TestResult) int { return strings.Compare(a.Location+a.Name, b.Location+b.Name) })
	return out, nil
}

// testErrors turns failing results into errors.
func testErrors(results []TestResult) []error {
	var errs []error
	for _, r := range results {
		switch {
		case r.Skip || r.Pass:
		case r.Err != nil:
			errs = append(errs, fmt.Errorf("policy: test %s (%s) errored: %w", r.Name, r.Location, r.Err))
		default:
			errs = append(errs, fmt.Errorf("policy: test %s (%s) failed", r.Name, r.Location))
		}
	}
	return errs
}

// RunTests runs the Rego tests of the configured policy (as `opa test`
// does) against the configured data, for `warden policy test`. The error is
// for loading or compiling; failing tests are results.
func RunTests(ctx context.Context, cfg config.Policy, baseDir string) ([]TestResult, error) {
	r, err := resolve(cfg, baseDir)
	if err != nil {
		return nil, err
	}
	s, errs := loadSources(r)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	data, err := s.dataValue()
	if err != nil {
		return nil, err
	}
	return runTests(ctx, s, data)
}

// Check reports every problem with a policy configuration, for `warden
// check`: parse and compile errors (file:line), data file errors, the
// policy's own data check (data_errors), the decision query, and failing
// Rego tests. Tests run even when TestOnLoad is off. Nil means it would load.
func Check(ctx context.Context, cfg config.Policy, baseDir string) []error {
	r, err := resolve(cfg, baseDir)
	if err != nil {
		return []error{err}
	}
	s, errs := loadSources(r)
	if len(errs) > 0 {
		return errs
	}
	c, errs := s.compile()
	if len(errs) > 0 {
		return errs
	}
	data, err := s.dataValue()
	if err != nil {
		return []error{err}
	}
	errs = append(errs, dataErrors(ctx, c, data, r.query)...)
	if _, err := prepare(ctx, c, data, r.query); err != nil {
		errs = append(errs, err)
	}
	results, err := runTests(ctx, s, data)
	if err != nil {
		return append(errs, err)
	}
	return append(errs, testErrors(results)...)
}
