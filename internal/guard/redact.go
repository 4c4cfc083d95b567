package guard

import (
	"bytes"
	"context"
	"sort"
	"strings"
	"unicode/utf8"
)

// Placeholder is the text that replaces a finding: "[REDACTED:<rule>]". It
// names the rule, never the value, so the same kind of secret always reads
// the same and a reader (or model) still knows what was there.
func Placeholder(rule string) string { return "[REDACTED:" + rule + "]" }

// Redact replaces every finding's span in text with its placeholder.
// Overlapping findings merge into one span named after the highest-scoring
// of them. Spans outside text are ignored. Pass only the findings to redact:
// usually those of Redactable.
func Redact(text string, fs []Finding) string {
	spans := mergeSpans(fs, len(text))
	if len(spans) == 0 {
		return text
	}
	var b strings.Builder
	b.Grow(len(text))
	last := 0
	for _, sp := range spans {
		b.WriteString(text[last:sp.start])
		b.WriteString(Placeholder(sp.rule))
		last = sp.end
	}
	b.WriteString(text[last:])
	return b.String()
}

// Redactable returns the findings Redact should remove by default: secrets
// and PII. Prompt-injection spans are evidence for a verdict, not data to
// hide.
func Redactable(fs []Finding) []Finding {
	out := make([]Finding, 0, len(fs))
	for _, f := range fs {
		if f.Category == CategorySecret || f.Category == CategoryPII {
			out = append(out, f)
		}
	}
	return out
}

type span struct {
	start, end int
	rule       string
	score      float64
}

func mergeSpans(fs []Finding, n int) []span {
	spans := make([]span, 0, len(fs))
	for _, f := range fs {
		if f.Start < 0 || f.End > n || f.End <= f.Start {
			continue
		}
		spans = append(spans, span{f.Start, f.End, f.Rule, f.Score})
	}
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].start != spans[j].start {
			return spans[i].start < spans[j].start
		}
		return spans[i].end > spans[j].end
	})
	out := spans[:0]
	for _, sp := range spans {
		if k := len(out); k > 0 && sp.start < out[k-1].end {
			last := &out[k-1]
			if sp.end > last.end {
				last.end = sp.end
			}
			if sp.score > last.score {
				last.score, last.rule = sp.score, sp.rule
			}
			continue
		}
		out = append(out, sp)
	}
	return out
}

// StreamRedactor redacts secrets and PII in a stream (a model's streamed
// response) whose chunks may split a secret anywhere.
//
// It holds back the last Window bytes of what it has seen (Config.StreamWindow,
// default 256) and emits only text that can no longer become part of a
// finding of at most Window bytes: a secret split across two Writes is still
// redacted whole. A PEM "-----BEGIN" marker holds output until its END
// line, up to 16 KiB, so private keys, longer than any sensible window, are
// redacted whole too. Output lags input by at most Window bytes plus a
// quarter window (plus the held PEM block); Flush releases the rest at end
// of stream.
//
// A StreamRedactor is not safe for concurrent use; use one per stream.
type StreamRedactor struct {
	s      *Scanner
	c      Context
	window int
	// pending is input not yet emitted; tail is the end of what was emitted,
	// kept as left context for rules that look behind (api_key=...).
	pending []byte
	tail    []byte
	// buf is reused to join tail and pending for each scan.
	buf []byte
	// Found counts the findings redacted so far, per rule.
	Found map[string]int
}

// maxPEMHold bounds how long a BEGIN marker may hold output.
const maxPEMHold = 16 << 10

// NewStreamRedactor returns a redactor for one stream of text in context c.
func (s *Scanner) NewStreamRedactor(c Context) *StreamRedactor {
	return &StreamRedactor{s: s, c: c, window: s.cfg.StreamWindow, Found: map[string]int{}}
}

// Write consumes p and returns the redacted output that is now safe to
// emit (possibly empty). The returned slice is the caller's.
//
// Output is released in steps of a quarter window (at least 16 bytes): a
// scan runs only once that much is pending beyond the window, not on every
// Write. Model tokens arrive a few bytes at a time, and a rescan of the
// window per token would make a stream's cost grow with window × tokens.
func (r *StreamRedactor) Write(p []byte) []byte {
	r.pending = append(r.pending, p...)
	if len(r.pending) < r.window+r.step() {
		return nil
	}
	return r.emit(false)
}

// step is how much must be pending beyond the window before a scan.
func (r *StreamRedactor) step() int { return max(r.window/4, 16) }

// Flush returns everything still held, redacted. Call it once at the end of
// the stream.
func (r *StreamRedactor) Flush() []byte {
	out := r.emit(true)
	r.pending = r.pending[:0]
	r.tail = r.tail[:0]
	return out
}

func (r *StreamRedactor) emit(final bool) []byte {
	if len(r.pending) == 0 {
		return nil
	}
	cut := len(r.pending)
	if !final {
		cut = len(r.pending) - r.window
		if h := pemHold(r.pending); h >= 0 && len(r.pending)-h < maxPEMHold {
			cut = min(cut, h)
		}
		if cut <= 0 {
			return nil
		}
		// never cut inside a UTF-8 sequence
		for cut > 0 && !utf8.RuneStart(r.pending[cut]) {
			cut--
		}
	}
	// Scan left context + pending, keep findings that touch pending.
	lc := len(r.tail)
	r.buf = append(append(r.buf[:0], r.tail...), r.pending...)
	st := &scan{s: r.s, ctx: context.Background(), c: r.c}
	text := string(r.buf)
	if r.s.secret {
		r.s.secrets.scan(st, text)
	}
	if r.s.pii {
		scanPII(st, text)
	}
	fs := st.findings[:0] // filtered in place
	for _, f := range st.findings {
		if f.End <= lc {
			continue // wholly in text already emitted
		}
		f.Start = max(f.Start, lc) - lc
		f.End -= lc
		fs = append(fs, f)
	}
	if !final {
		cut = cutBefore(fs, cut)
	}
	keep := fs[:0]
	for _, f := range fs {
		if f.End <= cut {
			keep = append(keep, f)
			r.Found[f.Rule]++
		}
	}
	out := []byte(Redact(text[lc:lc+cut], keep))
	// slide: emitted original bytes become left context
	r.tail = append(r.tail, r.pending[:cut]...)
	if len(r.tail) > r.window {
		r.tail = append(r.tail[:0], r.tail[len(r.tail)-r.window:]...)
	}
	r.pending = append(r.pending[:0], r.pending[cut:]...)
	return out
}

// cutBefore moves cut back until no finding crosses it: a finding that
// crosses the cut is emitted whole (redacted) on a later call. Moving the
// cut back to one finding's start can make it cross another finding, one
// seen earlier in the list (overlapping findings: a token with an
// e-mail-shaped tail), so it repeats until none crosses.
func cutBefore(fs []Finding, cut int) int {
	for moved := true; moved; {
		moved = false
		for _, f := range fs {
			if f.Start < cut && f.End > cut {
				cut, moved = f.Start, true
			}
		}
	}
	return cut
}

// pemHold returns the offset of the last "-----BEGIN" in b that has no END
// line after it, or -1.
func pemHold(s []byte) int {
	// Index is vectorised and LastIndex is not: look forward first, since
	// most text has no marker at all.
	i := bytes.Index(s, pemBegin)
	if i >= 0 {
		i += bytes.LastIndex(s[i:], pemBegin)
	}
	if i < 0 {
		// a marker may be split: hold a trailing partial "-----BE"
		for k := min(len(s), 10); k > 0; k-- {
			if bytes.HasSuffix(s, pemBegin[:k]) && k >= 5 {
				return len(s) - k
			}
		}
		return -1
	}
	if bytes.Contains(s[i:], pemEnd) && bytes.Count(s[i:], pemDashes) >= 4 {
		return -1
	}
	return i
}

var (
	pemBegin  = []byte("-----BEGIN")
	pemEnd    = []byte("-----END")
	pemDashes = []byte("-----")
)

func (r *StreamRedactor) totalFound() int {
	n := 0
	for _, c := range r.Found {
		n += c
	}
	return n
}
