package guard

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// evalRow is one labelled example of testdata/guard/eval/*.jsonl.
type evalRow struct {
	Text     string  `json:"text"`
	Label    int     `json:"label"`
	Category string  `json:"category"`
	Context  Context `json:"context"`
	Source   string  `json:"source"`
}

func loadEval(t testing.TB, name string) []evalRow {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "guard", "eval", name))
	if err != nil {
		t.Fatal(err)
	}
	var rows []evalRow
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		var r evalRow
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("%s:%d: %v", name, line, err)
		}
		if r.Label != 0 && r.Label != 1 || !validContext(r.Context) || r.Source == "" {
			t.Fatalf("%s:%d: bad row %+v", name, line, r)
		}
		rows = append(rows, r)
	}
	return rows
}

type confusion struct{ tp, fp, tn, fn int }

func (c confusion) precision() float64 {
	if c.tp+c.fp == 0 {
		return 1
	}
	return float64(c.tp) / float64(c.tp+c.fp)
}

func (c confusion) recall() float64 {
	if c.tp+c.fn == 0 {
		return 1
	}
	return float64(c.tp) / float64(c.tp+c.fn)
}

func (c confusion) fpr() float64 {
	if c.fp+c.tn == 0 {
		return 0
	}
	return float64(c.fp) / float64(c.fp+c.tn)
}

// predicted is the detector's verdict on a row for the row's category:
// prompt injection as the scanner's block decision under the context's
// threshold, secrets and PII as "anything found".
func predicted(s *Scanner, r Result, cat string, c Context) bool {
	switch cat {
	case CategoryPromptInjection:
		return r.MaxScore[cat] >= s.cfg.Thresholds[c].PromptInjection
	default:
		return r.MaxScore[cat] > 0
	}
}

type evalReport struct {
	byCat map[string]*confusion
	byCtx map[string]*confusion // prompt injection per context
	// secretFP counts rows that are not secret positives on which a secret
	// was found (the "ordinary code and prose" false positives).
	secretFP []string
	misses   []string
}

func runEval(t testing.TB, s *Scanner, rows []evalRow) evalReport {
	rep := evalReport{byCat: map[string]*confusion{}, byCtx: map[string]*confusion{}, secretFP: nil}
	for _, row := range rows {
		res := s.Scan(context.Background(), row.Text, row.Context)
		if res.OverBudget {
			t.Errorf("over budget on %q", row.Text)
		}
		got := predicted(s, res, row.Category, row.Context)
		c := rep.byCat[row.Category]
		if c == nil {
			c = &confusion{}
			rep.byCat[row.Category] = c
		}
		cells := []*confusion{c}
		if row.Category == CategoryPromptInjection {
			k := string(row.Context)
			if rep.byCtx[k] == nil {
				rep.byCtx[k] = &confusion{}
			}
			cells = append(cells, rep.byCtx[k])
		}
		for _, c := range cells {
			switch {
			case got && row.Label == 1:
				c.tp++
			case got && row.Label == 0:
				c.fp++
			case !got && row.Label == 0:
				c.tn++
			default:
				c.fn++
			}
		}
		if got != (row.Label == 1) {
			rep.misses = append(rep.misses, fmt.Sprintf("%s/%s want=%d score=%.3f rules=%v text=%.70q", row.Category, row.Context, row.Label, res.MaxScore[row.Category], rulesOf(res, row.Category), row.Text))
		}
		if !(row.Category == CategorySecret && row.Label == 1) && res.MaxScore[CategorySecret] > 0 {
			rep.secretFP = append(rep.secretFP, fmt.Sprintf("%v %.70q", rulesOf(res, CategorySecret), row.Text))
		}
	}
	return rep
}

func rulesOf(r Result, cat string) []string {
	var out []string
	for _, f := range r.Findings {
		if f.Category == cat {
			out = append(out, fmt.Sprintf("%s:%.2f", f.Rule, f.Score))
		}
	}
	return out
}

func (rep evalReport) table(name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n%-26s %4s %4s %4s %4s %9s %6s %5s\n", name, "category", "TP", "FP", "TN", "FN", "precision", "recall", "FPR")
	line := func(k string, c *confusion) {
		fmt.Fprintf(&b, "%-26s %4d %4d %4d %4d %9.3f %6.3f %5.3f\n", k, c.tp, c.fp, c.tn, c.fn, c.precision(), c.recall(), c.fpr())
	}
	for _, k := range Categories {
		if c := rep.byCat[k]; c != nil {
			line(k, c)
		}
	}
	var ks []string
	for k := range rep.byCtx {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	for _, k := range ks {
		line("  prompt_injection/"+k, rep.byCtx[k])
	}
	fmt.Fprintf(&b, "secret false positives on other rows: %d\n", len(rep.secretFP))
	return b.String()
}

// TestEval measures precision and recall on the labelled sets and fails
// below the targets on the held-out set. Run with -v to print the tables:
//
//	go test -run TestEval -v ./internal/guard/
func TestEval(t *testing.T) {
	s := newTestScanner(t)
	for _, name := range []string{"eval.jsonl", "heldout.jsonl"} {
		rep := runEval(t, s, loadEval(t, name))
		t.Log("\n" + rep.table(name))
		// Misses are printed for the tuning set only: the held-out set is
		// for measuring, and reading its misses is how it stops being
		// held out.
		if name == "eval.jsonl" {
			for _, m := range rep.misses {
				t.Logf("  miss: %s", m)
			}
		}
		for _, m := range rep.secretFP {
			t.Errorf("%s: secret false positive: %s", name, m)
		}
		if name != "heldout.jsonl" {
			continue
		}
		pi, se, pii := rep.byCat[CategoryPromptInjection], rep.byCat[CategorySecret], rep.byCat[CategoryPII]
		if pi.precision() < 0.90 || pi.recall() < 0.80 {
			t.Errorf("held-out prompt injection: precision %.3f (want ≥ 0.90), recall %.3f (want ≥ 0.80)", pi.precision(), pi.recall())
		}
		if se.recall() < 0.95 || se.fp > 0 {
			t.Errorf("held-out secrets: recall %.3f (want ≥ 0.95), false positives %d (want 0)", se.recall(), se.fp)
		}
		if pii.precision() < 0.90 || pii.recall() < 0.90 {
			t.Errorf("held-out PII: precision %.3f (want ≥ 0.90), recall %.3f (want ≥ 0.90)", pii.precision(), pii.recall())
		}
	}
}

// newTestScanner is the default scanner with a generous deadline: tests
// run on loaded CI machines, and the budget tests configure their own.
func newTestScanner(t testing.TB) *Scanner {
	t.Helper()
	s, err := New(Config{Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
