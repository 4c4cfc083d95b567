package guard

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"unicode/utf8"
)

// ScanInput scans what an operator hands `warden guard scan`: a JSON
// document (an OpenAI or Anthropic body, an MCP message) is walked leaf by
// leaf with ScanJSON, anything else is one text. c overrides the inferred
// context; empty means infer for JSON and "user" for text.
func (s *Scanner) ScanInput(ctx context.Context, input []byte, c Context) ([]LeafResult, error) {
	trimmed := bytes.TrimSpace(input)
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') && json.Valid(trimmed) {
		return s.ScanJSON(ctx, trimmed, c)
	}
	if !utf8.Valid(input) {
		return nil, fmt.Errorf("guard: input is neither JSON nor UTF-8 text")
	}
	if c == "" {
		c = ContextUser
	}
	r := s.Scan(ctx, string(input), c)
	if len(r.Findings) == 0 && !r.OverBudget {
		return nil, nil
	}
	return []LeafResult{{Path: "$", Context: c, Result: r}}, nil
}

// Severities in increasing order, as Finding.Severity reports them.
var Severities = []string{"low", "medium", "high", "critical"}

func severityRank(s string) int {
	for i, v := range Severities {
		if v == s {
			return i
		}
	}
	return -1
}

// AtOrAbove reports whether any finding reaches severity min, or any scan
// was over budget (an unfinished scan fails a CI gate). min "none" never
// fails.
func AtOrAbove(leaves []LeafResult, min string) (bool, error) {
	if min == "none" {
		return false, nil
	}
	rank := severityRank(min)
	if rank < 0 {
		return false, fmt.Errorf("guard: unknown severity %q (want low, medium, high, critical or none)", min)
	}
	for _, l := range leaves {
		if l.Result.OverBudget {
			return true, nil
		}
		for _, f := range l.Result.Findings {
			if severityRank(f.Severity()) >= rank {
				return true, nil
			}
		}
	}
	return false, nil
}

// reportFinding is one line of the machine-readable report: where, what,
// how bad. Never the matched text: a report is a CI log.
type reportFinding struct {
	Path     string  `json:"path"`
	Context  Context `json:"context"`
	Category string  `json:"category"`
	Rule     string  `json:"rule"`
	Score    float64 `json:"score"`
	Severity string  `json:"severity"`
	Start    int     `json:"start"`
	End      int     `json:"end"`
}

type report struct {
	Findings   []reportFinding `json:"findings"`
	Blocked    []string        `json:"blocked_paths"`
	OverBudget bool            `json:"over_budget"`
}

func buildReport(leaves []LeafResult) report {
	rep := report{Findings: []reportFinding{}, Blocked: []string{}}
	for _, l := range leaves {
		if l.Result.Blocked {
			rep.Blocked = append(rep.Blocked, l.Path)
		}
		rep.OverBudget = rep.OverBudget || l.Result.OverBudget
		for _, f := range l.Result.Findings {
			rep.Findings = append(rep.Findings, reportFinding{
				Path: l.Path, Context: l.Context, Category: f.Category, Rule: f.Rule,
				Score: f.Score, Severity: f.Severity(), Start: f.Start, End: f.End,
			})
		}
	}
	return rep
}

// WriteReport prints leaves as a table (default) or JSON. Offsets are byte
// offsets into the decoded string at Path.
func WriteReport(w io.Writer, leaves []LeafResult, asJSON bool) error {
	rep := buildReport(leaves)
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	if len(rep.Findings) == 0 && !rep.OverBudget {
		_, err := fmt.Fprintln(w, "no findings")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PATH\tCONTEXT\tCATEGORY\tRULE\tSCORE\tSEVERITY\tSPAN")
	for _, f := range rep.Findings {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.2f\t%s\t%d-%d\n", f.Path, f.Context, f.Category, f.Rule, f.Score, f.Severity, f.Start, f.End)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if rep.OverBudget {
		fmt.Fprintln(w, "scan over budget: findings may be incomplete")
	}
	if len(rep.Blocked) > 0 {
		_, err := fmt.Fprintf(w, "blocked under default thresholds: %d of %d strings\n", len(rep.Blocked), len(leaves))
		return err
	}
	return nil
}
