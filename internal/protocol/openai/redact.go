package openai

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
)

// applyGuard reads the guard obligations, refuses those this exchange
// cannot apply, redacts the prompt under redact_prompt and sets up output
// scanning.
func (x *exchange) applyGuard(ctx context.Context, ds []protocol.Decision) error {
	o, err := ReadGuardObligations(ds)
	if err != nil {
		return err
	}
	switch x.op {
	case opEmbeddings, opModelsList, opModelsRetrieve:
		o.Redact = false // no generated text comes back: nothing to redact
	case opChat:
		if o.Redact && x.wantsAudio() {
			return obligationRejected(fmt.Errorf("openai: redact cannot be applied to audio output"))
		}
	}
	if x.tree == nil {
		o.RedactPrompt = nil // no body, no prompt
	}
	if (o.Redact || o.RedactPrompt != nil) && x.guard == nil {
		return obligationRejected(fmt.Errorf("openai: redact obligations need guardrails, which are off"))
	}
	x.out = OutputGuard{G: x.guard, Redact: o.Redact}
	if o.RedactPrompt == nil {
		return nil
	}
	x.prompt = &PromptRedaction{Guard: x.guard, Categories: o.RedactPrompt}
	return x.prompt.Tree(ctx, x.tree, nil)
}

// guardOutput scans a non-streamed completion. Under the redact obligation
// it rewrites every string of choices[].message (chat: content, refusal,
// tool call arguments, audio transcript, reasoning_content, annotations,
// whatever else the upstream put there) or choices[].text (completions),
// and of any other field but the envelope (id, object, model, ...), drops
// logprobs (they spell the tokens out) and returns the re-encoded
// body; otherwise it only inspects the output for the audit record and
// returns raw unchanged.
func (x *exchange) guardOutput(ctx context.Context, raw []byte, m map[string]any) ([]byte, error) {
	if !x.out.Redact {
		x.out.InspectValue(ctx, outputValues(m))
		return raw, nil
	}
	x.out.scanned = true
	v, err := jsonstrict.Parse(raw, jsonstrict.Options{MaxBytes: x.lim.MaxResponseBytes})
	if err != nil {
		return nil, &protocol.Error{Status: http.StatusBadGateway, Code: CodeUpstreamMalformed, Message: "upstream returned a malformed response", Err: fmt.Errorf("openai: response: %w", err)}
	}
	root, _ := v.(map[string]any)
	if x.op == opResponses {
		changed, err := x.out.redactResponse(ctx, root)
		if err != nil || !changed {
			return raw, err
		}
		return x.reencode(raw, root)
	}
	changed := false
	for k, v := range root {
		if slices.Contains(chunkEnvelope, k) || v == nil {
			continue
		}
		if choices, ok := v.([]any); ok && k == "choices" {
			for _, c := range choices {
				co, ok := c.(map[string]any)
				if !ok {
					return nil, &protocol.Error{Status: http.StatusBadGateway, Code: CodeUpstreamMalformed, Message: "upstream returned a malformed response",
						Err: fmt.Errorf("openai: response: a choice is %T", c)}
				}
				c, err := x.redactChoice(ctx, co)
				if err != nil {
					return nil, err
				}
				changed = changed || c
			}
			continue
		}
		// Any other field (choices not an array among them) is redacted
		// whole: no text goes out unscanned.
		out, c, err := x.out.RedactValue(ctx, v)
		if err != nil {
			return nil, err
		}
		root[k], changed = out, changed || c
	}
	if !changed {
		return raw, nil
	}
	return x.reencode(raw, root)
}

// redactChoice redacts a non-streamed choice in place: every string of
// message, text and any other field but index and finish_reason; logprobs
// are dropped. It reports whether anything changed.
func (x *exchange) redactChoice(ctx context.Context, co map[string]any) (bool, error) {
	changed := false
	if lp, ok := co["logprobs"]; ok && lp != nil {
		co["logprobs"] = nil
		changed = true
	}
	msg, _ := co["message"].(map[string]any)
	if a, _ := msg["audio"].(map[string]any); a["data"] != nil {
		return false, withheld("audio output") // speech cannot be redacted
	}
	for k, v := range co {
		if k == "index" || k == "finish_reason" || v == nil {
			continue
		}
		out, c, err := x.out.RedactValue(ctx, v)
		if err != nil {
			return false, err
		}
		co[k], changed = out, changed || c
	}
	return changed, nil
}

// reencode is a redacted response body (raw as it came).
func (x *exchange) reencode(raw []byte, root map[string]any) ([]byte, error) {
	b, err := jsonstrict.AppendMarshal(make([]byte, 0, len(raw)), root)
	if err != nil {
		return nil, &protocol.Error{Status: http.StatusInternalServerError, Code: protocol.CodeInternal, Message: "internal error", Err: fmt.Errorf("openai: re-encode response: %w", err)}
	}
	return b, nil
}

// outputValues lists the generated output of a non-streamed response:
// chat messages (every field), completion texts, Responses output items.
func outputValues(m map[string]any) []any {
	var vs []any
	choices, _ := m["choices"].([]any)
	for _, c := range choices {
		co, _ := c.(map[string]any)
		for _, k := range []string{"message", "text"} {
			if v, ok := co[k]; ok && v != nil {
				vs = append(vs, v)
			}
		}
	}
	items, _ := m["output"].([]any)
	return append(vs, items...)
}

// wantsAudio reports whether a chat request asks for spoken output
// (modalities ["text", "audio"], or audio options): speech cannot be
// redacted, so the redact obligation refuses it.
func (x *exchange) wantsAudio() bool {
	if a, ok := x.tree["audio"]; ok && a != nil {
		return true
	}
	ms, _ := x.tree["modalities"].([]any)
	for _, m := range ms {
		if m == "audio" {
			return true
		}
	}
	return false
}
