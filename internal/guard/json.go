package guard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// LeafResult is the scan of one string in a JSON document.
type LeafResult struct {
	// Path locates the string: $.messages[0].content, or
	// $.tools[1].inputSchema.properties{sidenote} for an object key.
	Path string
	// Context the string was scanned in.
	Context Context
	Result  Result
}

// JSON walk limits: a document deeper or wider than this is refused rather
// than scanned in part.
const (
	maxJSONDepth  = 128
	maxJSONLeaves = 50000
)

// ErrJSONLimits is returned for documents beyond the walk limits.
var ErrJSONLimits = errors.New("guard: JSON document too deep or too many strings")

type jsonFrame struct {
	array  bool
	index  int
	key    string
	hasKey bool
	// role and typ are the object's "role" and "type" values, which decide
	// the context of the strings below it.
	role, typ string
}

type jsonLeaf struct {
	path  string
	value string
	// frames are the ancestors (their role and type may be learned after
	// the leaf); keys are the ancestors' keys at the time of the leaf.
	frames []*jsonFrame
	keys   []string
	isKey  bool
}

func snapshot(stack []*jsonFrame) ([]*jsonFrame, []string) {
	keys := make([]string, len(stack))
	for i, f := range stack {
		keys[i] = f.key
	}
	return append([]*jsonFrame(nil), stack...), keys
}

// ScanJSON scans every string leaf (and every object key, where full-schema
// tool poisoning hides) of a JSON document: an OpenAI or Anthropic request,
// an MCP message. Duplicate keys are all scanned, in document order. With c
// empty the context of each string is inferred from where it sits: tool
// definitions → tool_description; tool results (role "tool", type
// "tool_result", an MCP "result") → tool_output; assistant turns and
// "choices" → response; anything else → user. Leaves without findings are
// omitted.
func (s *Scanner) ScanJSON(ctx context.Context, doc []byte, c Context) ([]LeafResult, error) {
	leaves, err := jsonLeaves(doc)
	if err != nil {
		return nil, err
	}
	var out []LeafResult
	remote := map[Context][]string{}
	var order []Context
	for _, l := range leaves {
		lc := c
		if lc == "" {
			lc = inferContext(l)
		}
		if l.isKey && len(l.value) < 8 {
			continue
		}
		r := s.scanLocal(ctx, l.value, lc)
		if s.remote != nil && s.remote.want[lc] && !l.isKey {
			if remote[lc] == nil {
				order = append(order, lc)
			}
			remote[lc] = append(remote[lc], l.value)
		}
		if len(r.Findings) == 0 && !r.OverBudget && !r.Blocked {
			continue
		}
		out = append(out, LeafResult{Path: l.path, Context: lc, Result: r})
	}
	// The classifier is asked about all of a context's strings together,
	// packed into as few calls as its max_bytes allows (every byte is sent;
	// a long string is cut into pieces), the calls in parallel: one round
	// trip per request, not one per string.
	for _, lc := range order {
		if r := s.consultAll(ctx, remote[lc], lc); len(r.Findings) > 0 || r.Blocked || r.OverBudget {
			out = append(out, LeafResult{Path: "$", Context: lc, Result: r})
		}
	}
	return out, nil
}

func jsonLeaves(doc []byte) ([]jsonLeaf, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var stack []*jsonFrame
	var leaves []jsonLeaf
	path := func() string {
		var b strings.Builder
		b.WriteString("$")
		for _, f := range stack {
			if f.array {
				b.WriteString("[" + strconv.Itoa(f.index-1) + "]")
			} else if f.hasKey {
				if isIdent(f.key) {
					b.WriteString("." + f.key)
				} else {
					b.WriteString("[" + strconv.Quote(f.key) + "]")
				}
			}
		}
		return b.String()
	}
	expectKey := func() bool {
		return len(stack) > 0 && !stack[len(stack)-1].array && !stack[len(stack)-1].hasKey
	}
	// afterValue resets the key of the enclosing object.
	afterValue := func() {
		if len(stack) > 0 && !stack[len(stack)-1].array {
			stack[len(stack)-1].key, stack[len(stack)-1].hasKey = "", false
		}
	}
	beforeValue := func() {
		if len(stack) > 0 && stack[len(stack)-1].array {
			stack[len(stack)-1].index++
		}
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if len(stack) > 0 {
				return nil, fmt.Errorf("guard: parse JSON: %w", io.ErrUnexpectedEOF)
			}
			break
		}
		if err != nil {
			return nil, fmt.Errorf("guard: parse JSON: %w", err)
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				beforeValue()
				if len(stack) >= maxJSONDepth {
					return nil, ErrJSONLimits
				}
				stack = append(stack, &jsonFrame{array: v == '['})
			case '}', ']':
				stack = stack[:len(stack)-1]
				afterValue()
			}
		case string:
			if expectKey() {
				top := stack[len(stack)-1]
				top.key, top.hasKey = v, true
				p := path()
				fr, ks := snapshot(stack)
				leaves = append(leaves, jsonLeaf{path: p[:len(p)-len(keySuffix(v))] + "{" + v + "}", value: v, frames: fr, keys: ks, isKey: true})
				continue
			}
			beforeValue()
			if len(stack) > 0 && !stack[len(stack)-1].array {
				switch top := stack[len(stack)-1]; top.key {
				case "role":
					top.role = v
				case "type":
					top.typ = v
				}
			}
			fr, ks := snapshot(stack)
			leaves = append(leaves, jsonLeaf{path: path(), value: v, frames: fr, keys: ks})
			afterValue()
		default:
			beforeValue()
			afterValue()
		}
		if len(leaves) > maxJSONLeaves {
			return nil, ErrJSONLimits
		}
	}
	return leaves, nil
}

func keySuffix(k string) string {
	if isIdent(k) {
		return "." + k
	}
	return "[" + strconv.Quote(k) + "]"
}

func isIdent(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(isAlnum(c) || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// inferContext walks a leaf's ancestors for the signs listed on ScanJSON.
func inferContext(l jsonLeaf) Context {
	for _, k := range l.keys {
		switch k {
		case "tools", "functions", "inputSchema", "outputSchema", "input_schema", "instructions", "prompts", "resourceTemplates":
			return ContextToolDescription
		}
	}
	for i := len(l.frames) - 1; i >= 0; i-- {
		f := l.frames[i]
		switch {
		case f.role == "tool" || f.role == "function" || f.typ == "tool_result" || f.typ == "function_call_output":
			return ContextToolOutput
		case f.role == "assistant" || f.role == "model":
			return ContextResponse
		case l.keys[i] == "choices" || l.keys[i] == "delta":
			return ContextResponse
		case l.keys[i] == "result" || l.keys[i] == "structuredContent":
			return ContextToolOutput
		}
	}
	return ContextUser
}

// maxRemoteCalls bounds the classifier calls for one context of one
// request; text beyond them is not classified and the result is over
// budget (blocked under fail mode closed).
const maxRemoteCalls = 8

// remoteBatches packs texts into batches of at most max bytes, joined by
// blank lines; a text longer than max is cut into pieces on rune
// boundaries.
func remoteBatches(texts []string, max int) []string {
	var out []string
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 {
			out = append(out, b.String())
			b.Reset()
		}
	}
	for _, t := range texts {
		for len(t) > max {
			cut := max
			for cut > 0 && !utf8.RuneStart(t[cut]) {
				cut--
			}
			if cut == 0 {
				cut = max
			}
			flush()
			out = append(out, t[:cut])
			t = t[cut:]
		}
		if b.Len() > 0 && b.Len()+2+len(t) > max {
			flush()
		}
		if b.Len() > 0 {
			b.WriteString("\n\n")
		}
		b.WriteString(t)
	}
	flush()
	return out
}

// consultAll asks the classifier about texts in context c and merges the
// verdicts: the highest score, blocked if any call blocked.
func (s *Scanner) consultAll(ctx context.Context, texts []string, c Context) Result {
	batches := remoteBatches(texts, s.remote.cfg.MaxBytes)
	over := len(batches) > maxRemoteCalls
	if over {
		batches = batches[:maxRemoteCalls]
	}
	rs := make([]Result, len(batches))
	var wg sync.WaitGroup
	for i, text := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs[i] = Result{MaxScore: map[string]float64{}}
			s.consult(ctx, text, c, &rs[i])
		}()
	}
	wg.Wait()
	out := Result{MaxScore: map[string]float64{}, OverBudget: over}
	for _, r := range rs {
		if len(r.Findings) > 0 {
			f := r.Findings[0]
			if len(out.Findings) == 0 {
				out.Findings = append(out.Findings, f)
			} else if f.Score > out.Findings[0].Score {
				out.Findings[0] = f
			}
		}
		for _, b := range r.BlockedBy {
			if !containsStr(out.BlockedBy, b) {
				out.BlockedBy = append(out.BlockedBy, b)
			}
		}
		out.Blocked = out.Blocked || r.Blocked
	}
	out.MaxScore = maxScores(out.Findings)
	if over {
		s.log.Warn("guard: remote classifier: text beyond max_bytes x calls not classified", "context", string(c), "calls", maxRemoteCalls)
		if s.cfg.FailMode != FailOpen {
			out.Blocked = true
			out.BlockedBy = append(out.BlockedBy, "over_budget")
		}
	}
	return out
}
