package scan

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/wardenhq/warden/internal/scan/rules"
)

// Rego queries: every package under warden.kubernetes (input: one
// Kubernetes object) or warden.dockerfile (input: a parsed Dockerfile)
// contributes its deny set.
const (
	queryKubernetes = "f := data.warden.kubernetes[_].deny[_]"
	queryDockerfile = "f := data.warden.dockerfile[_].deny[_]"
)

// regoEngine holds the queries, prepared once; Eval is safe for concurrent
// use, which the admission webhook relies on.
type regoEngine struct {
	k8s, docker rego.PreparedEvalQuery
}

func newRegoEngine(ctx context.Context, userDir string) (*regoEngine, error) {
	var mods []func(*rego.Rego)
	err := fs.WalkDir(rules.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !isRegoModule(p) {
			return err
		}
		b, err := rules.FS.ReadFile(p)
		if err != nil {
			return err
		}
		mods = append(mods, rego.Module("builtin/"+p, string(b)))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rego: builtin rules: %w", err)
	}
	if userDir != "" {
		st, err := os.Stat(userDir)
		if err != nil {
			return nil, fmt.Errorf("rego: rules dir: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("rego: rules dir %s is not a directory", userDir)
		}
		n := 0
		err = filepath.WalkDir(userDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !isRegoModule(p) {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n++
			mods = append(mods, rego.Module(p, string(b)))
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("rego: rules dir %s: %w", userDir, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("rego: rules dir %s has no .rego files", userDir)
		}
	}
	prep := func(q string) (rego.PreparedEvalQuery, error) {
		opts := append([]func(*rego.Rego){rego.Query(q), rego.StrictBuiltinErrors(true)}, mods...)
		return rego.New(opts...).PrepareForEval(ctx)
	}
	e := &regoEngine{}
	if e.k8s, err = prep(queryKubernetes); err != nil {
		return nil, fmt.Errorf("rego: compile: %w", err)
	}
	if e.docker, err = prep(queryDockerfile); err != nil {
		return nil, fmt.Errorf("rego: compile: %w", err)
	}
	return e, nil
}

func isRegoModule(p string) bool {
	return strings.HasSuffix(p, ".rego") && !strings.HasSuffix(p, "_test.rego")
}

// regoResult is the contract for a deny entry. Only id and message are
// required; severity defaults to medium.
type regoResult struct {
	ID          string   `json:"id"`
	Severity    string   `json:"severity"`
	Title       string   `json:"title"`
	Message     string   `json:"message"`
	Remediation string   `json:"remediation"`
	References  []string `json:"references"`
	Path        []any    `json:"path"`
	Line        int      `json:"line"`
}

func (e *regoEngine) eval(ctx context.Context, q *rego.PreparedEvalQuery, input ast.Value) ([]regoResult, error) {
	rs, err := q.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return nil, err
	}
	var out []regoResult
	var bad []string
	for _, r := range rs {
		v := r.Bindings["f"]
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		var rr regoResult
		if err := json.Unmarshal(b, &rr); err != nil || rr.ID == "" || rr.Message == "" {
			bad = append(bad, string(b))
			continue
		}
		out = append(out, rr)
	}
	if len(bad) > 0 {
		return out, fmt.Errorf("deny entries without id/message (or wrongly typed): %s", strings.Join(bad, "; "))
	}
	return out, nil
}

// toFinding converts a Rego result; line is resolved by the caller.
func (rr *regoResult) toFinding(line int) (Finding, error) {
	sev := SeverityMedium
	var err error
	if rr.Severity != "" {
		sev, err = ParseSeverity(rr.Severity)
		if err != nil {
			err = fmt.Errorf("rule %s: %w", rr.ID, err)
		}
	}
	title := rr.Title
	if title == "" {
		title = rr.ID
	}
	return Finding{RuleID: rr.ID, Severity: sev, Title: title, Message: rr.Message,
		Remediation: rr.Remediation, References: rr.References, Line: line}, err
}
