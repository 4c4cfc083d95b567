package anthropic

import (
	"context"
	"fmt"
	"net/http"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
	"github.com/wardenhq/warden/internal/protocol/openai"
	"github.com/wardenhq/warden/internal/sse"
)

// applyGuard reads the guard obligations (package openai's redact and
// redact_prompt), refuses them without a Guard, redacts the prompt and
// sets up output scanning.
func (x *exchange) applyGuard(ctx context.Context, ds []protocol.Decision) error {
	o, err := openai.ReadGuardObligations(ds)
	if err != nil {
		return err
	}
	if x.op != opMessages {
		o.Redact = false // count_tokens and models return no generated text
	}
	if x.tree == nil {
		o.RedactPrompt = nil
	}
	if (o.Redact || o.RedactPrompt != nil) && x.guard == nil {
		return &protocol.Error{Status: http.StatusForbidden, Code: openai.CodeObligationRejected, Message: "request denied: policy attached a condition this endpoint cannot apply",
			Err: fmt.Errorf("anthropic: redact obligations need guardrails, which are off")}
	}
	x.out = openai.OutputGuard{G: x.guard, Redact: o.Redact}
	if o.RedactPrompt == nil {
		return nil
	}
	x.prompt = &openai.PromptRedaction{Guard: x.guard, Categories: o.RedactPrompt}
	return x.prompt.Tree(ctx, x.tree, signedBlock)
}

// signedBlock reports whether a content block is signed by Anthropic: a
// thinking block with its signature, or a redacted_thinking block (whose
// data is encrypted). Changing one would make the API refuse the request,
// so redact_prompt leaves them as they are and refuses the request when
// one holds a finding (openai.PromptRedaction.Tree).
func signedBlock(b map[string]any) bool {
	switch typ, _ := b["type"].(string); typ {
	case "thinking":
		_, ok := b["signature"]
		return ok
	case "redacted_thinking":
		return true
	}
	return false
}

// guardOutput scans a non-streamed message: under the redact obligation
// content[].text of text blocks is redacted and the body re-encoded;
// otherwise the text is only inspected and raw returned unchanged.
func (x *exchange) guardOutput(ctx context.Context, raw []byte, m map[string]any) ([]byte, error) {
	blocks, _ := m["content"].([]any)
	if !x.out.Redact {
		var texts []string
		for _, b := range blocks {
			bo, _ := b.(map[string]any)
			if typ, _ := bo["type"].(string); typ == "text" {
				if s, ok := bo["text"].(string); ok {
					texts = append(texts, s)
				}
			}
		}
		x.out.Inspect(ctx, texts)
		return raw, nil
	}
	v, err := jsonstrict.Parse(raw, jsonstrict.Options{MaxBytes: x.lim.MaxResponseBytes})
	if err != nil {
		return nil, malformed(fmt.Errorf("anthropic: response: %w", err))
	}
	root, _ := v.(map[string]any)
	blocks, _ = root["content"].([]any)
	changed := false
	if _, err := x.out.RedactText(ctx, ""); err != nil { // marks the output scanned
		return nil, err
	}
	for _, b := range blocks {
		bo, _ := b.(map[string]any)
		if typ, _ := bo["type"].(string); typ != "text" {
			continue
		}
		s, ok := bo["text"].(string)
		if !ok {
			return nil, malformed(fmt.Errorf("anthropic: response: text block without a string text"))
		}
		out, err := x.out.RedactText(ctx, s)
		if err != nil {
			return nil, err
		}
		if out != s {
			bo["text"] = out
			changed = true
		}
	}
	if !changed {
		return raw, nil
	}
	b, err := jsonstrict.AppendMarshal(make([]byte, 0, len(raw)), root)
	if err != nil {
		return nil, &protocol.Error{Status: http.StatusInternalServerError, Code: protocol.CodeInternal, Message: "internal error", Err: fmt.Errorf("anthropic: re-encode response: %w", err)}
	}
	return b, nil
}

func (h *streamHook) open(idx int64) *openai.OutputStream {
	if st := h.texts[idx]; st != nil {
		return st
	}
	if h.texts == nil {
		h.texts = map[int64]*openai.OutputStream{}
	}
	st := h.x.out.NewStream()
	h.texts[idx] = st
	h.keys = append(h.keys, idx)
	return st
}

// guardStart opens the stream of a text content block; a block that starts
// with text already (unusual) has it passed through the stream too.
func (h *streamHook) guardStart(dst []byte, ev sse.Event, obj map[string]any) ([]byte, error) {
	cb, _ := obj["content_block"].(map[string]any)
	if typ, _ := cb["type"].(string); typ != "text" {
		return sse.AppendEvent(dst, ev)
	}
	idx, _, _ := jsonstrict.GetInt(obj, "index")
	st := h.open(idx)
	s, ok := cb["text"].(string)
	if !ok {
		if h.x.out.Redact && cb["text"] != nil {
			return dst, errMalformed
		}
		return sse.AppendEvent(dst, ev)
	}
	out := st.Write(s)
	if !h.x.out.Redact || out == s {
		return sse.AppendEvent(dst, ev)
	}
	cb["text"] = out
	return reencode(dst, ev, obj)
}

// guardDelta passes a text_delta through its block's stream: in scan-only
// mode the event goes out as it came; under the redact obligation it
// carries only the text the stream released.
func (h *streamHook) guardDelta(dst []byte, ev sse.Event, obj, d map[string]any) ([]byte, error) {
	if typ, _ := d["type"].(string); typ != "text_delta" {
		return sse.AppendEvent(dst, ev)
	}
	s, ok := d["text"].(string)
	if !ok {
		if h.x.out.Redact {
			return dst, errMalformed
		}
		return sse.AppendEvent(dst, ev)
	}
	idx, _, _ := jsonstrict.GetInt(obj, "index")
	out := h.open(idx).Write(s)
	if !h.x.out.Redact || out == s {
		return sse.AppendEvent(dst, ev)
	}
	d["text"] = out
	return reencode(dst, ev, obj)
}

func reencode(dst []byte, ev sse.Event, obj map[string]any) ([]byte, error) {
	b, err := jsonstrict.Marshal(obj)
	if err != nil {
		return dst, errMalformed
	}
	ev.Data = string(b)
	return sse.AppendEvent(dst, ev)
}

// flush ends block idx's stream; under the redact obligation, and when
// emit is true, the held text goes out as one more text_delta.
func (h *streamHook) flush(dst []byte, idx int64, emit bool) []byte {
	st := h.texts[idx]
	if st == nil {
		return dst
	}
	out := st.Flush()
	if out == "" || !emit || !h.x.out.Redact {
		return dst
	}
	b, err := jsonstrict.Marshal(map[string]any{"type": "content_block_delta", "index": idx, "delta": map[string]any{"type": "text_delta", "text": out}})
	if err != nil {
		return dst
	}
	dst, _ = sse.AppendEvent(dst, sse.Event{Type: "content_block_delta", Data: string(b), HasData: true})
	return dst
}

// flushAll ends every block's stream, in the order they were opened.
func (h *streamHook) flushAll(dst []byte, emit bool) []byte {
	for _, idx := range h.keys {
		dst = h.flush(dst, idx, emit)
	}
	return dst
}
