package guard

import (
	"context"
	"sort"
	"strings"

	"github.com/wardenhq/warden/internal/protocol"
)

// Summarize folds the per-string results into the one input.guards of a
// request (the shape of protocol.Inspection.Verdict): blocked if any string is; per category the total count, the
// highest score and the union of rule ids; blocked_contexts names the
// contexts of the blocked strings (e.g. "tool_output"). Never text, never
// offsets or paths.
func (s *Scanner) Summarize(leaves []LeafResult, overBudget bool) map[string]any {
	failClosed := s.cfg.FailMode != FailOpen
	blocked := false
	by := map[string]bool{}
	ctxs := map[string]bool{}
	type agg struct {
		count float64
		max   float64
		rules map[string]bool
	}
	cats := map[string]*agg{}
	for _, l := range leaves {
		r := l.Result
		if r.OverBudget {
			overBudget = true
		}
		if r.Blocked {
			blocked = true
			ctxs[string(l.Context)] = true
			for _, b := range r.BlockedBy {
				by[b] = true
			}
		}
		for _, f := range r.Findings {
			a := cats[f.Category]
			if a == nil {
				a = &agg{rules: map[string]bool{}}
				cats[f.Category] = a
			}
			a.count++
			a.rules[f.Rule] = true
		}
		for cat, sc := range r.MaxScore {
			if a := cats[cat]; a != nil && sc > a.max {
				a.max = sc
			}
		}
	}
	if overBudget && failClosed {
		blocked = true
		by["over_budget"] = true
	}
	cm := make(map[string]any, len(cats))
	for cat, a := range cats {
		cm[cat] = map[string]any{"count": a.count, "max_score": a.max, "rules": sortedAny(a.rules)}
	}
	return map[string]any{
		"blocked":          blocked,
		"over_budget":      overBudget,
		"blocked_by":       sortedAny(by),
		"blocked_contexts": sortedAny(ctxs),
		"categories":       cm,
	}
}

func sortedAny(set map[string]bool) []any {
	ks := make([]string, 0, len(set))
	for k := range set {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	out := make([]any, len(ks))
	for i, k := range ks {
		out[i] = k
	}
	return out
}

// scanGuard is s as protocols see it (protocol.Guard): the scanner's
// thresholds, budgets and fail mode.
type scanGuard struct {
	s          *Scanner
	failClosed bool
}

// ForProtocols returns s as a protocol.Guard, the value the gateway lends to
// protocols in protocol.Request.Guard. A nil s gives an untyped nil
// interface, so protocols can test Request.Guard == nil.
func ForProtocols(s *Scanner) protocol.Guard {
	if s == nil {
		return nil
	}
	return &scanGuard{s: s, failClosed: s.cfg.FailMode != FailOpen}
}

// Inspect scans every string (and object key) of v as one text: the strings
// are joined by blank lines, so one scan and one budget cover a whole tool
// result or point payload. It runs the offline detectors only: a response
// may hold hundreds of texts (list items, points), and one classifier call
// each would put seconds on the response path; the remote classifier sees
// request bodies (ScanJSON).
func (g *scanGuard) Inspect(ctx context.Context, c string, v any) protocol.Inspection {
	var b strings.Builder
	collectText(&b, v, 0)
	if b.Len() == 0 {
		return protocol.Inspection{}
	}
	r := g.s.ScanOffline(ctx, b.String(), Context(c))
	if len(r.Findings) == 0 && !r.OverBudget && !r.Blocked {
		return protocol.Inspection{}
	}
	verdict := g.s.Summarize([]LeafResult{{Context: Context(c), Result: r}}, false)
	return protocol.Inspection{Blocked: verdict["blocked"].(bool), Findings: len(r.Findings), Verdict: verdict}
}

// maxCollectDepth bounds the walk of a decoded value; protocols hand over
// values their strict parsers already bounded, this is belt and braces.
const maxCollectDepth = 64

func collectText(b *strings.Builder, v any, depth int) {
	if depth > maxCollectDepth {
		return
	}
	add := func(s string) {
		if s == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteString("\n\n")
		}
		b.WriteString(s)
	}
	switch x := v.(type) {
	case string:
		add(x)
	case []any:
		for _, e := range x {
			collectText(b, e, depth+1)
		}
	case []string:
		for _, e := range x {
			add(e)
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys) // deterministic text, deterministic verdict
		for _, k := range keys {
			add(k)
			collectText(b, x[k], depth+1)
		}
	}
}

// Redact replaces secrets and personal data in text; ok false withholds a
// text that could not be scanned within budget under fail mode closed, or
// when a category asked for is disabled (guard.disable): an obligation to
// redact what no detector looks for cannot be met.
func (g *scanGuard) Redact(ctx context.Context, c, text string, categories ...string) (string, []string, bool) {
	return g.s.redactText(ctx, c, text, g.failClosed, categories)
}

// RedactStrict is Redact for text Warden itself writes (the investigation
// capture): any scan that did not finish withholds the text, whatever the
// fail mode, and every category must be enabled.
func (s *Scanner) RedactStrict(ctx context.Context, text string) (string, []string, bool) {
	return s.redactText(ctx, string(ContextUser), text, true, nil)
}

// ScanOffline is Scan without the remote classifier.
func (s *Scanner) ScanOffline(ctx context.Context, text string, c Context) Result {
	return s.scanLocal(ctx, text, c)
}

func (s *Scanner) redactText(ctx context.Context, c, text string, failClosed bool, categories []string) (string, []string, bool) {
	if len(categories) == 0 {
		categories = []string{CategorySecret, CategoryPII}
	}
	for _, cat := range categories {
		if (cat == CategorySecret && !s.secret) || (cat == CategoryPII && !s.pii) || (cat != CategorySecret && cat != CategoryPII) {
			return "", nil, false
		}
	}
	if text == "" {
		return text, nil, true
	}
	r := s.scanLocal(ctx, text, Context(c))
	if r.OverBudget && failClosed {
		return "", nil, false
	}
	fs := Redactable(r.Findings)
	keep := fs[:0]
	for _, f := range fs {
		if containsStr(categories, f.Category) {
			keep = append(keep, f)
		}
	}
	fs = keep
	if len(fs) == 0 {
		return text, nil, true
	}
	seen := map[string]bool{}
	var rules []string
	for _, f := range fs {
		if !seen[f.Rule] {
			seen[f.Rule] = true
			rules = append(rules, f.Rule)
		}
	}
	sort.Strings(rules)
	return Redact(text, fs), rules, true
}

// NewStream returns the scanner's look-behind stream redactor.
func (g *scanGuard) NewStream(c string) protocol.StreamGuard {
	return streamGuard{g.s.NewStreamRedactor(Context(c))}
}

type streamGuard struct{ r *StreamRedactor }

func (s streamGuard) Write(p []byte) []byte { return s.r.Write(p) }
func (s streamGuard) Flush() []byte         { return s.r.Flush() }
func (s streamGuard) Found() map[string]int { return s.r.Found }
