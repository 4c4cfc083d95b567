package openai

import (
	"context"
	"fmt"
	"net/http"

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
	case opResponses:
		if o.Redact {
			return obligationRejected(fmt.Errorf("openai: redact is not applied to Responses API output"))
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

// outputFields are the generated-text fields of a chat message or delta.
var outputFields = []string{"content", "refusal"}

// guardOutput scans a non-streamed completion. Under the redact obligation
// it rewrites choices[].message.content and .refusal (chat) or
// choices[].text (completions), drops logprobs (they spell the tokens out)
// and returns the re-encoded body; otherwise it only inspects the output
// text for the audit record and returns raw unchanged.
func (x *exchange) guardOutput(ctx context.Context, raw []byte, m map[string]any) ([]byte, error) {
	if !x.out.Redact {
		x.out.Inspect(ctx, outputTexts(m))
		return raw, nil
	}
	x.out.scanned = true
	v, err := jsonstrict.Parse(raw, jsonstrict.Options{MaxBytes: x.lim.MaxResponseBytes})
	if err != nil {
		return nil, &protocol.Error{Status: http.StatusBadGateway, Code: CodeUpstreamMalformed, Message: "upstream returned a malformed response", Err: fmt.Errorf("openai: response: %w", err)}
	}
	root, _ := v.(map[string]any)
	choices, _ := root["choices"].([]any)
	changed := false
	for _, c := range choices {
		co, _ := c.(map[string]any)
		holder, fields := co, []string{"text"}
		if x.op == opChat {
			holder, _ = co["message"].(map[string]any)
			fields = outputFields
		}
		if lp, ok := co["logprobs"]; ok && lp != nil {
			co["logprobs"] = nil
			changed = true
		}
		for _, k := range fields {
			switch s := holder[k].(type) {
			case nil:
			case string:
				out, err := x.out.RedactText(ctx, s)
				if err != nil {
					return nil, err
				}
				if out != s {
					holder[k] = out
					changed = true
				}
			default:
				// Text in a shape this package does not know: withheld
				// rather than passed unscanned.
				return nil, &protocol.Error{Status: http.StatusBadGateway, Code: CodeUpstreamMalformed, Message: "upstream returned a malformed response",
					Err: fmt.Errorf("openai: response: choices[].%s is %T", k, s)}
			}
		}
	}
	if !changed {
		return raw, nil
	}
	b, err := jsonstrict.AppendMarshal(make([]byte, 0, len(raw)), root)
	if err != nil {
		return nil, &protocol.Error{Status: http.StatusInternalServerError, Code: protocol.CodeInternal, Message: "internal error", Err: fmt.Errorf("openai: re-encode response: %w", err)}
	}
	return b, nil
}

// outputTexts lists the generated text of a non-streamed response: chat
// message content and refusals, completion texts, Responses output_text
// and refusal parts.
func outputTexts(m map[string]any) []string {
	var texts []string
	add := func(v any) {
		if s, ok := v.(string); ok && s != "" {
			texts = append(texts, s)
		}
	}
	choices, _ := m["choices"].([]any)
	for _, c := range choices {
		co, _ := c.(map[string]any)
		add(co["text"])
		if msg, ok := co["message"].(map[string]any); ok {
			for _, k := range outputFields {
				add(msg[k])
			}
		}
	}
	items, _ := m["output"].([]any)
	for _, it := range items {
		item, _ := it.(map[string]any)
		parts, _ := item["content"].([]any)
		for _, p := range parts {
			po, _ := p.(map[string]any)
			add(po["text"])
			add(po["refusal"])
		}
	}
	return texts
}
