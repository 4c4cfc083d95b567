package scan

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/scan/*/expected.txt from the current output")

const goldenRoot = "../../testdata/scan"

// goldenCase is one directory of testdata/scan: input/ is scanned (with
// config.yaml if present) and the findings and errors must equal
// expected.txt. A "# rules: ID…" header limits the comparison to those
// rule ids (prefixes ending in * allowed), so that a case about one rule
// is not disturbed by the others — including when it expects none.
func TestGolden(t *testing.T) {
	dirs, err := os.ReadDir(goldenRoot)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		n++
		t.Run(d.Name(), func(t *testing.T) { runGolden(t, filepath.Join(goldenRoot, d.Name())) })
	}
	if n == 0 {
		t.Fatal("no golden cases")
	}
}

func goldenConfig(t testing.TB, dir string) Config {
	t.Helper()
	cfgFile := filepath.Join(dir, "config.yaml")
	if _, err := os.Stat(cfgFile); err != nil {
		return Config{}
	}
	cfg, err := LoadConfig(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	return *cfg
}

func runGolden(t *testing.T, dir string) {
	cfg := goldenConfig(t, dir)
	s, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	input := filepath.Join(dir, "input")
	res := s.Scan(context.Background(), []string{input}, Options{})
	expFile := filepath.Join(dir, "expected.txt")
	exp, _ := os.ReadFile(expFile)
	header, filter := goldenFilter(string(exp))
	got := goldenLines(res, input, filter)
	if *update {
		out := header + strings.Join(got, "\n")
		if len(got) > 0 {
			out += "\n"
		}
		if err := os.WriteFile(expFile, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	var want []string
	for _, l := range strings.Split(string(exp), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			want = append(want, l)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("findings differ (-want +got):\n%s", diff)
	}
}

func goldenFilter(exp string) (header string, filter []string) {
	for _, l := range strings.Split(exp, "\n") {
		if !strings.HasPrefix(l, "#") {
			break
		}
		header += l + "\n"
		if rest, ok := strings.CutPrefix(l, "# rules:"); ok {
			filter = append(filter, strings.Fields(rest)...)
		}
	}
	return header, filter
}

func goldenLines(res *Result, input string, filter []string) []string {
	rel := func(p string) string {
		if r, err := filepath.Rel(input, p); err == nil {
			return filepath.ToSlash(r)
		}
		return p
	}
	var out []string
	for _, f := range res.Findings {
		if len(filter) > 0 && !matchAny(filter, f.RuleID) {
			continue
		}
		l := fmt.Sprintf("%s %s %s:%d", f.Severity, f.RuleID, rel(f.File), f.Line)
		if f.Suppressed {
			l += " suppressed-by-" + f.SuppressedBy
		}
		out = append(out, l)
	}
	if len(filter) == 0 || matchAny(filter, "ERROR") {
		for _, e := range res.Errors {
			out = append(out, fmt.Sprintf("ERROR %s:%d", rel(e.File), e.Line))
		}
	}
	return out
}

func matchAny(patterns []string, id string) bool {
	for _, p := range patterns {
		if matchRule(p, id) {
			return true
		}
	}
	return false
}
