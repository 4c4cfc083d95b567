package openai

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/wardenhq/warden/internal/protocol"
)

// Guard obligations. Both are applied with the protocol.Guard the gateway
// lends in protocol.Request.Guard; without one (guardrails off) a request
// carrying either is refused (unsupported_obligation), never forwarded
// unredacted. The Anthropic package honours them too.
const (
	// ObligationRedact asks for secrets and personal data in the model's
	// output to be replaced by "[REDACTED:<rule>]" before the client sees
	// it. Its value must be true. It is applied to chat and legacy
	// completions, streamed or not, and is a no-op where no generated text
	// comes back (embeddings, models). Non-streamed, every string of
	// choices[].message (content, refusal, tool call and function call
	// arguments, audio transcript, reasoning_content, ...) or
	// choices[].text is redacted; streamed, the deltas' content, refusal,
	// reasoning_content, reasoning, audio.transcript, function_call.arguments
	// and tool_calls[].function.arguments (one StreamGuard per choice and
	// tool call) are, and any other delta field carrying text, a choice
	// index at or past n (or above 16), a non-null "error" beside choices,
	// cut the stream as malformed: what Warden cannot place is not passed
	// on. Speech cannot be redacted: a chat request asking for audio output
	// is refused. Responses API output (POST /v1/responses) is redacted
	// too: non-streamed, every string of the output items, output_text,
	// error and incomplete_details; streamed, the "delta" of the text
	// events (output_text, refusal, function_call_arguments,
	// custom_tool_call_input, mcp_call_arguments, code_interpreter_call_code,
	// reasoning_summary_text, reasoning_text, audio.transcript; one
	// StreamGuard per output_index, content or summary index and type),
	// with the held text sent as one more delta before the event that ends
	// it and later sequence numbers moved up, and every string of the
	// events repeating whole texts (*.done, items, parts, the response of
	// response.completed); any other event carrying text cuts the stream as
	// malformed (redact_responses.go). Logprobs are dropped everywhere.
	ObligationRedact = "redact"
	// ObligationRedactPrompt asks for the findings of the listed categories
	// ("secret", "pii") to be replaced in every string of the request body,
	// at any depth, before it is forwarded (PromptRedaction.Tree); a finding
	// that cannot be rewritten (in an object key, in a signed Anthropic
	// thinking block) refuses the request. Its value is a non-empty list of
	// known categories, e.g. ["secret"].
	ObligationRedactPrompt = "redact_prompt"
)

// redactCategories are the guard categories redact_prompt may name (the
// redactable ones: prompt-injection findings are evidence, not data).
var redactCategories = []string{"pii", "secret"}

// GuardObligations are the guard obligations of a request's decisions.
type GuardObligations struct {
	// Redact is the redact obligation (output redaction).
	Redact bool
	// RedactPrompt lists the categories redact_prompt names, sorted and
	// unique; nil when the obligation is absent.
	RedactPrompt []string
}

// ReadGuardObligations reads redact and redact_prompt from ds, strictly: a
// value of the wrong shape refuses the request (unsupported_obligation).
// Several decisions combine: redact if any asks, the union of categories.
func ReadGuardObligations(ds []protocol.Decision) (GuardObligations, error) {
	var o GuardObligations
	for _, d := range ds {
		if v, ok := d.Obligations[ObligationRedact]; ok {
			if v != true {
				return o, obligationRejected(fmt.Errorf("openai: redact obligation must be true, got %T", v))
			}
			o.Redact = true
		}
		v, ok := d.Obligations[ObligationRedactPrompt]
		if !ok {
			continue
		}
		cats, err := categories(v)
		if err != nil {
			return o, obligationRejected(err)
		}
		for _, c := range cats {
			if !slices.Contains(o.RedactPrompt, c) {
				o.RedactPrompt = append(o.RedactPrompt, c)
			}
		}
	}
	sort.Strings(o.RedactPrompt)
	return o, nil
}

// categories reads a redact_prompt value: a non-empty list of known
// categories. Policy yields []any; Go callers may pass []string.
func categories(v any) ([]string, error) {
	var list []string
	switch x := v.(type) {
	case []string:
		list = x
	case []any:
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("openai: redact_prompt: want a list of strings, got an element of type %T", e)
			}
			list = append(list, s)
		}
	default:
		return nil, fmt.Errorf("openai: redact_prompt: want a list of categories, got %T", v)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("openai: redact_prompt: empty list of categories")
	}
	for _, c := range list {
		if !slices.Contains(redactCategories, c) {
			return nil, fmt.Errorf("openai: redact_prompt: unknown category %q (known: %s)", c, strings.Join(redactCategories, ", "))
		}
	}
	return list, nil
}

func obligationRejected(err error) *protocol.Error {
	return &protocol.Error{Status: http.StatusForbidden, Code: CodeObligationRejected, Message: "request denied: policy attached a condition this endpoint cannot apply", Err: err}
}

// PromptRedaction applies redact_prompt to one request: each prompt string
// passes through Guard.Redact, and the rule ids replaced are kept for the
// audit record ("prompt_redacted"). Shared with the Anthropic package.
type PromptRedaction struct {
	Guard      protocol.Guard
	Categories []string
	rules      []string
}

// Text returns s with the findings of p.Categories replaced, s seen in
// guard context c (protocol.GuardUser, GuardToolOutput, ...). An error
// means s could not be scanned within budget: the request must be refused.
func (p *PromptRedaction) Text(ctx context.Context, c, s string) (string, error) {
	if s == "" {
		return s, nil
	}
	out, rules, ok := p.Guard.Redact(ctx, c, s, p.Categories...)
	if !ok {
		return "", &protocol.Error{Status: http.StatusForbidden, Code: protocol.CodeGuardBlocked, Message: "request withheld: the prompt could not be scanned for redaction",
			Err: fmt.Errorf("openai: redact_prompt: scan over budget (%s)", c)}
	}
	for _, r := range rules {
		if !slices.Contains(p.rules, r) {
			p.rules = append(p.rules, r)
		}
	}
	return out, nil
}

// Tree applies redact_prompt to a whole request body, in place: every
// string value at any depth passes through Text, whatever field it sits in
// (the gateway's request scan reads every string and key, and the default
// policy lets a secret through on the strength of this obligation, so a
// list of fields would always miss one). Around it:
//
//   - An object key cannot be rewritten without changing what the request
//     means: a key holding a finding refuses the request (403 guard_blocked).
//   - An object for which signed returns true (Anthropic's thinking blocks,
//     signed by the provider) is left as it is, and refuses the request if
//     any of its strings holds a finding.
//   - A string Redact changed is scanned again and must come back clean:
//     the strings Warden forwards hold no finding of the categories asked
//     for (those it did not change held none to begin with).
//
// Contexts follow the request's shape: tool results (role tool/function,
// tool_result and *_output items) are tool_output, tool definitions
// (tools, functions) tool_description, documents and search results
// document, the rest user. They only move the detectors' thresholds: every
// secret or PII finding is redacted whatever the context. Numbers, booleans
// and null are not scanned (neither does the gateway's request scan).
func (p *PromptRedaction) Tree(ctx context.Context, root map[string]any, signed func(map[string]any) bool) error {
	_, err := p.walk(ctx, protocol.GuardUser, root, "", signed, false)
	return err
}

func (p *PromptRedaction) walk(ctx context.Context, c string, v any, key string, signed func(map[string]any) bool, check bool) (any, error) {
	switch x := v.(type) {
	case string:
		if check {
			return x, p.check(ctx, c, x, errSignedFinding)
		}
		out, err := p.Text(ctx, c, x)
		if err != nil || out == x {
			return out, err
		}
		// Belt and braces: what goes out must scan clean.
		return out, p.check(ctx, c, out, errResidualFinding)
	case []any:
		for i, e := range x {
			out, err := p.walk(ctx, c, e, key, signed, check)
			if err != nil {
				return nil, err
			}
			x[i] = out
		}
	case map[string]any:
		c = objectContext(c, key, x)
		check = check || signed != nil && signed(x)
		for k, e := range x {
			if err := p.check(ctx, c, k, errKeyFinding); err != nil {
				return nil, err
			}
			out, err := p.walk(ctx, c, e, k, signed, check)
			if err != nil {
				return nil, err
			}
			x[k] = out
		}
	}
	return v, nil
}

// Prompt refusals: what redact_prompt cannot rewrite is not forwarded.
var (
	errKeyFinding      = errors.New("a secret or personal data sits in an object key, which cannot be redacted")
	errSignedFinding   = errors.New("a secret or personal data sits in a signed block (thinking), which cannot be redacted")
	errResidualFinding = errors.New("a secret or personal data remained after redaction")
)

// check refuses the request when s holds a finding of p.Categories.
func (p *PromptRedaction) check(ctx context.Context, c, s string, why error) error {
	if s == "" {
		return nil
	}
	_, rules, ok := p.Guard.Redact(ctx, c, s, p.Categories...)
	if !ok {
		return &protocol.Error{Status: http.StatusForbidden, Code: protocol.CodeGuardBlocked, Message: "request withheld: the prompt could not be scanned for redaction",
			Err: fmt.Errorf("openai: redact_prompt: scan over budget (%s)", c)}
	}
	if len(rules) == 0 {
		return nil
	}
	return &protocol.Error{Status: http.StatusForbidden, Code: protocol.CodeGuardBlocked, Message: "request withheld: " + why.Error(),
		Err: fmt.Errorf("openai: redact_prompt: %w (%s)", why, strings.Join(rules, ", "))}
}

// objectContext is the guard context of the strings of obj, found under key
// in a value seen in context c.
func objectContext(c, key string, obj map[string]any) string {
	switch key {
	case "tools", "functions":
		return protocol.GuardToolDescription
	}
	if r, _ := obj["role"].(string); r == "tool" || r == "function" {
		return protocol.GuardToolOutput
	}
	typ, _ := obj["type"].(string)
	switch {
	case typ == "tool_result" || strings.HasSuffix(typ, "_call_output") || strings.HasSuffix(typ, "_tool_result"):
		return protocol.GuardToolOutput
	case typ == "document" || typ == "search_result":
		return protocol.GuardDocument
	}
	return c
}

// Audit adds "prompt_redacted" (the sorted rule ids replaced; empty when
// the obligation applied and nothing was found) to a.
func (p *PromptRedaction) Audit(a map[string]any) {
	if p == nil {
		return
	}
	rules := slices.Clone(p.rules)
	sort.Strings(rules)
	if rules == nil {
		rules = []string{}
	}
	a["prompt_redacted"] = rules
}

// OutputGuard inspects a model's output with the request's Guard: it
// redacts it under the redact obligation, and otherwise only scans it so
// the audit record says what the model emitted ("response_guard": rule ids
// and counts, never text). A zero OutputGuard (no Guard) does nothing.
// Shared with the Anthropic package.
type OutputGuard struct {
	// G is the request's Guard; nil: nothing is scanned.
	G protocol.Guard
	// Redact applies the redact obligation.
	Redact bool

	scanned    bool
	overBudget bool
	partial    bool
	findings   int
	repeated   int // the most findings in one value that repeats counted text (redactRepeat)
	rules      []string
	streams    []*OutputStream
}

// Active reports whether output is scanned at all.
func (o *OutputGuard) Active() bool { return o.G != nil }

func (o *OutputGuard) addRules(rules []string) {
	for _, r := range rules {
		if !slices.Contains(o.rules, r) {
			o.rules = append(o.rules, r)
		}
	}
}

// RedactText returns a non-streamed output text with secrets and personal
// data replaced. An error means the text could not be scanned within budget
// under fail mode closed: the response must be withheld.
func (o *OutputGuard) RedactText(ctx context.Context, s string) (string, error) {
	o.scanned = true
	if s == "" {
		return s, nil
	}
	out, rules, ok := o.G.Redact(ctx, protocol.GuardResponse, s)
	if !ok {
		o.overBudget = true
		return "", &protocol.Error{Status: http.StatusBadGateway, Code: protocol.CodeGuardBlocked, Message: "response withheld: it could not be scanned for redaction",
			Err: fmt.Errorf("openai: redact: scan over budget")}
	}
	if len(rules) > 0 {
		o.addRules(rules)
		// Each merged span is one placeholder: count those Redact added.
		o.findings += max(strings.Count(out, "[REDACTED:")-strings.Count(s, "[REDACTED:"), 1)
	}
	return out, nil
}

// errWithheld is a response text that holds a finding Warden may not
// rewrite: an object key, a signed thinking block.
var errWithheld = errors.New("openai: redact: a finding that cannot be rewritten")

func withheld(what string) *protocol.Error {
	return &protocol.Error{Status: http.StatusBadGateway, Code: protocol.CodeGuardBlocked, Message: "response withheld: " + what + " holds a secret or personal data, which cannot be redacted",
		Err: fmt.Errorf("%w (%s)", errWithheld, what)}
}

// RedactValue redacts every string of a non-streamed output value (at any
// depth) in place with RedactText and reports whether any changed. A
// finding in an object key cannot be rewritten: the response is withheld.
func (o *OutputGuard) RedactValue(ctx context.Context, v any) (any, bool, error) {
	return o.redactValue(ctx, v, nil)
}

// redactValue is RedactValue leaving alone the strings of the object
// fields named in keep (identifiers), at any depth.
func (o *OutputGuard) redactValue(ctx context.Context, v any, keep []string) (any, bool, error) {
	switch x := v.(type) {
	case string:
		out, err := o.RedactText(ctx, x)
		return out, err == nil && out != x, err
	case []any:
		changed := false
		for i, e := range x {
			out, c, err := o.redactValue(ctx, e, keep)
			if err != nil {
				return nil, false, err
			}
			x[i], changed = out, changed || c
		}
		return x, changed, nil
	case map[string]any:
		changed := false
		for k, e := range x {
			if _, ok := e.(string); ok && slices.Contains(keep, k) {
				continue
			}
			if err := o.CheckText(ctx, k, "an object key"); err != nil {
				return nil, false, err
			}
			out, c, err := o.redactValue(ctx, e, keep)
			if err != nil {
				return nil, false, err
			}
			x[k], changed = out, changed || c
		}
		return x, changed, nil
	}
	return v, false, nil
}

// CheckText scans an output text Warden may not change (a signed thinking
// block, an object key, named by what): a finding withholds the response.
func (o *OutputGuard) CheckText(ctx context.Context, s, what string) error {
	out, err := o.RedactText(ctx, s)
	if err != nil {
		return err
	}
	if out != s {
		return withheld(what)
	}
	return nil
}

// MarkPartial records that some output text reached the client without
// being scanned: the audit then says "scanned": "partial".
func (o *OutputGuard) MarkPartial() { o.partial = true }

// Inspect scans non-streamed output texts for the audit record only.
func (o *OutputGuard) Inspect(ctx context.Context, texts []string) {
	if len(texts) == 0 {
		o.scanned = true
		return
	}
	o.InspectValue(ctx, texts)
}

// InspectValue scans every string and object key of v for the audit
// record only.
func (o *OutputGuard) InspectValue(ctx context.Context, v any) {
	o.scanned = true
	in := o.G.Inspect(ctx, protocol.GuardResponse, v)
	o.findings += in.Findings
	if in.Verdict == nil {
		return
	}
	if ob, _ := in.Verdict["over_budget"].(bool); ob {
		o.overBudget = true
	}
	cats, _ := in.Verdict["categories"].(map[string]any)
	for _, c := range cats {
		cm, _ := c.(map[string]any)
		rs, _ := cm["rules"].([]any)
		for _, r := range rs {
			if s, ok := r.(string); ok {
				o.addRules([]string{s})
			}
		}
	}
}

// NewStream returns the filter for one streamed text (one per choice and
// field, per content block).
func (o *OutputGuard) NewStream() *OutputStream {
	o.scanned = true
	s := &OutputStream{o: o, sg: o.G.NewStream(protocol.GuardResponse)}
	o.streams = append(o.streams, s)
	return s
}

// Audit adds "response_guard" to a when output was scanned:
// {"scanned", "redacted", "rules" (sorted ids), "findings"}. "scanned" is
// true when every output text the client was sent was scanned, "partial"
// when some was not (MarkPartial, or a scan-only stream whose last batch
// was never scanned because its end was not seen).
func (o *OutputGuard) Audit(a map[string]any) {
	if o.G == nil || !o.scanned {
		return
	}
	findings := o.findings
	rules := slices.Clone(o.rules)
	partial := o.partial
	repeated := o.repeated
	for _, s := range o.streams {
		partial = partial || len(s.batch) > 0
		n := 0
		for r, c := range s.sg.Found() {
			n += c
			if !slices.Contains(rules, r) {
				rules = append(rules, r)
			}
		}
		if s.repeat {
			repeated = max(repeated, n)
		} else {
			findings += n
		}
	}
	findings = max(findings, repeated)
	sort.Strings(rules)
	if rules == nil {
		rules = []string{}
	}
	var scanned any = true
	if partial {
		scanned = "partial"
	}
	rg := map[string]any{"scanned": scanned, "redacted": o.Redact && findings > 0, "rules": rules, "findings": findings}
	if o.overBudget {
		rg["over_budget"] = true
	}
	a["response_guard"] = rg
}

// scanBatch is how much text a scan-only stream collects before handing it
// to the StreamGuard: the client already has it, so batching costs no
// latency, and the look-behind window is rescanned once per batch rather
// than once per 4-byte delta.
const scanBatch = 512

// OutputStream is one streamed text under an OutputGuard. Under the redact
// obligation it holds back the StreamGuard's look-behind window and
// returns only text already scanned; otherwise it returns the text as
// given, at once, and scans it on the side in batches.
type OutputStream struct {
	o     *OutputGuard
	sg    protocol.StreamGuard
	batch []byte
	// repeat: the stream scans text that repeats other streams' (a
	// Responses "*.done" event, response.completed): its findings count
	// only as far as they exceed the others (Audit takes the larger).
	repeat bool
}

// Write takes the next piece of the text and returns what may be sent now.
func (s *OutputStream) Write(text string) string {
	if text == "" {
		return ""
	}
	if !s.o.Redact {
		s.batch = append(s.batch, text...)
		if len(s.batch) >= scanBatch {
			s.sg.Write(s.batch)
			s.batch = s.batch[:0]
		}
		return text
	}
	return string(s.sg.Write([]byte(text)))
}

// ScanAll writes, scan-only, every string of v (a decoded JSON value) to
// the stream, each followed by a newline: text that is passed through as
// it is but must still be seen by the detectors.
func (s *OutputStream) ScanAll(v any) {
	switch x := v.(type) {
	case string:
		s.Write(x)
		s.Write("\n")
	case []any:
		for _, e := range x {
			s.ScanAll(e)
		}
	case map[string]any:
		for _, e := range x {
			s.ScanAll(e)
		}
	}
}

// Flush ends the text so far and returns what was still held ("" in
// scan-only mode, where nothing is held, but the last batch is scanned).
// A later Write starts a new text on the same stream: text an upstream
// sends after a choice finished is scanned (and redacted) like the rest.
func (s *OutputStream) Flush() string {
	if !s.o.Redact {
		if len(s.batch) > 0 {
			s.sg.Write(s.batch)
			s.batch = s.batch[:0]
		}
		s.sg.Flush()
		return ""
	}
	return string(s.sg.Flush())
}

// Findings is the number of findings redacted (or, scan-only, found) in
// the text released so far.
func (s *OutputStream) Findings() int {
	n := 0
	for _, c := range s.sg.Found() {
		n += c
	}
	return n
}
