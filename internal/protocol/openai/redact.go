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
	return x.redactPrompt(ctx, x.prompt)
}

// redactPrompt passes every string of the request the model will read
// through p: message contents and text parts, assistant refusals and tool
// call arguments, tool descriptions, completion prompts, embedding inputs,
// Responses instructions and input items. Tool results are seen as
// tool_output, tool descriptions as tool_description, the rest as user.
func (x *exchange) redactPrompt(ctx context.Context, p *PromptRedaction) error {
	t := x.tree
	switch x.op {
	case opChat:
		msgs, _ := t["messages"].([]any)
		for _, m := range msgs {
			mo, _ := m.(map[string]any)
			c := protocol.GuardUser
			if r, _ := mo["role"].(string); r == "tool" || r == "function" {
				c = protocol.GuardToolOutput
			}
			if err := redactContent(ctx, p, c, mo, "content"); err != nil {
				return err
			}
			if err := p.Field(ctx, c, mo, "refusal"); err != nil {
				return err
			}
			calls, _ := mo["tool_calls"].([]any)
			for _, tc := range calls {
				tco, _ := tc.(map[string]any)
				if err := redactArguments(ctx, p, tco["function"]); err != nil {
					return err
				}
			}
			if err := redactArguments(ctx, p, mo["function_call"]); err != nil {
				return err
			}
		}
		tools, _ := t["tools"].([]any)
		for _, tl := range tools {
			to, _ := tl.(map[string]any)
			for _, k := range []string{"function", "custom"} {
				if fo, ok := to[k].(map[string]any); ok {
					if err := p.Field(ctx, protocol.GuardToolDescription, fo, "description"); err != nil {
						return err
					}
				}
			}
		}
		fns, _ := t["functions"].([]any)
		for _, f := range fns {
			fo, _ := f.(map[string]any)
			if err := p.Field(ctx, protocol.GuardToolDescription, fo, "description"); err != nil {
				return err
			}
		}
	case opCompletions:
		return redactInput(ctx, p, t, "prompt")
	case opEmbeddings:
		return redactInput(ctx, p, t, "input")
	case opResponses:
		if err := p.Field(ctx, protocol.GuardUser, t, "instructions"); err != nil {
			return err
		}
		if _, ok := t["input"].(string); ok {
			if err := p.Field(ctx, protocol.GuardUser, t, "input"); err != nil {
				return err
			}
		}
		items, _ := t["input"].([]any)
		for _, it := range items {
			item, _ := it.(map[string]any)
			typ, _ := item["type"].(string)
			switch typ {
			case "function_call_output", "custom_tool_call_output", "mcp_call_output", "computer_call_output", "local_shell_call_output", "shell_call_output":
				if err := redactContent(ctx, p, protocol.GuardToolOutput, item, "output"); err != nil {
					return err
				}
			case "function_call", "custom_tool_call":
				for _, k := range []string{"arguments", "input"} {
					if err := p.Field(ctx, protocol.GuardUser, item, k); err != nil {
						return err
					}
				}
			default:
				if err := redactContent(ctx, p, protocol.GuardUser, item, "content"); err != nil {
					return err
				}
			}
		}
		tools, _ := t["tools"].([]any)
		for _, tl := range tools {
			to, _ := tl.(map[string]any)
			if err := p.Field(ctx, protocol.GuardToolDescription, to, "description"); err != nil {
				return err
			}
		}
	}
	return nil
}

// redactContent redacts obj[key] when it is a string, or the text and
// refusal of each part when it is an array of parts (chat content parts,
// Responses input_text/output_text). Attachments (images, audio, files)
// are left alone.
func redactContent(ctx context.Context, p *PromptRedaction, c string, obj map[string]any, key string) error {
	switch v := obj[key].(type) {
	case string:
		return p.Field(ctx, c, obj, key)
	case []any:
		for _, part := range v {
			po, ok := part.(map[string]any)
			if !ok {
				continue
			}
			for _, k := range []string{"text", "refusal"} {
				if err := p.Field(ctx, c, po, k); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// redactArguments redacts the arguments of a function call object.
func redactArguments(ctx context.Context, p *PromptRedaction, fn any) error {
	fo, ok := fn.(map[string]any)
	if !ok {
		return nil
	}
	return p.Field(ctx, protocol.GuardUser, fo, "arguments")
}

// redactInput redacts a prompt/input field: a string or an array of
// strings; token arrays carry no text Warden can read and pass as they are.
func redactInput(ctx context.Context, p *PromptRedaction, obj map[string]any, key string) error {
	switch v := obj[key].(type) {
	case string:
		return p.Field(ctx, protocol.GuardUser, obj, key)
	case []any:
		for i, e := range v {
			if s, ok := e.(string); ok {
				out, err := p.Text(ctx, protocol.GuardUser, s)
				if err != nil {
					return err
				}
				v[i] = out
			}
		}
	}
	return nil
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
