package anthropic

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

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
// every string of every content block is redacted (text and its
// citations, tool_use input, server tool results, ...) and the body
// re-encoded, except signed blocks: a thinking block holding a finding
// withholds the response (it cannot be changed without breaking its
// signature), a redacted_thinking block is encrypted and passes. Without
// the obligation the blocks are only inspected and raw returned unchanged.
func (x *exchange) guardOutput(ctx context.Context, raw []byte, m map[string]any) ([]byte, error) {
	if !x.out.Redact {
		blocks, _ := m["content"].([]any)
		x.out.InspectValue(ctx, blocks)
		return raw, nil
	}
	v, err := jsonstrict.Parse(raw, jsonstrict.Options{MaxBytes: x.lim.MaxResponseBytes})
	if err != nil {
		return nil, malformed(fmt.Errorf("anthropic: response: %w", err))
	}
	root, _ := v.(map[string]any)
	if _, err := x.out.RedactText(ctx, ""); err != nil { // marks the output scanned
		return nil, err
	}
	changed, err := x.redactBlocks(ctx, root["content"])
	if err != nil {
		return nil, err
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

// redactBlocks redacts, under the redact obligation, whole content blocks
// (a non-streamed message, a message_start that carries content): see
// guardOutput.
func (x *exchange) redactBlocks(ctx context.Context, content any) (bool, error) {
	blocks, ok := content.([]any)
	if !ok {
		_, c, err := x.out.RedactValue(ctx, content)
		return c, err
	}
	changed := false
	for _, b := range blocks {
		bo, _ := b.(map[string]any)
		switch typ, _ := bo["type"].(string); typ {
		case "redacted_thinking":
			continue
		case "thinking":
			s, _ := bo["thinking"].(string)
			if err := x.out.CheckText(ctx, s, "signed thinking"); err != nil {
				return false, err
			}
			continue
		}
		_, c, err := x.out.RedactValue(ctx, b)
		if err != nil {
			return false, err
		}
		changed = changed || c
	}
	return changed, nil
}

// maxBlock is the highest content block index the output guard keeps a
// stream for: under the redact obligation a higher one cuts the stream;
// scan-only its text goes to one shared overflow stream.
const maxBlock = 64

// A blockKey names one streamed text: the block index and what it carries.
type blockKey struct {
	idx  int64
	kind string // "text", "json" (tool input), "thinking", "other" (scan-only)
}

// Deltas carrying text, by type, with the field and the stream kind.
var deltaFields = map[string][2]string{
	"text_delta":       {"text", "text"},
	"input_json_delta": {"partial_json", "json"},
	"thinking_delta":   {"thinking", "thinking"},
}

// errUnredactable cuts a stream, under the redact obligation, whose output
// holds a finding Warden may not rewrite: thinking (thinking_delta text is
// covered by the block's signature; changing it would break the next
// request that sends the block back, so it is withheld instead), an object
// key. The stream ends with a guard_blocked error event.
var errUnredactable = errors.New("anthropic: output holds a secret or personal data that cannot be redacted")

func (h *streamHook) open(k blockKey) *openai.OutputStream {
	if st := h.texts[k]; st != nil {
		return st
	}
	if h.texts == nil {
		h.texts = map[blockKey]*openai.OutputStream{}
	}
	st := h.x.out.NewStream()
	h.texts[k] = st
	h.keys = append(h.keys, k)
	return st
}

// blockIndex reads an event's content block index, bounded by maxBlock.
func (h *streamHook) blockIndex(obj map[string]any) (int64, error) {
	idx, ok, err := jsonstrict.GetInt(obj, "index")
	if !ok || err != nil || idx < 0 || idx > maxBlock {
		if h.x.out.Redact {
			return 0, errMalformed
		}
		return -1, nil
	}
	return idx, nil
}

// scanOther writes, scan-only, every string of v to the stream k.
func (h *streamHook) scanOther(k blockKey, v any) {
	h.open(k).ScanAll(v)
}

// guardMessageStart redacts (or, scan-only, scans) the content of a
// message_start, empty in every stream Anthropic sends.
func (h *streamHook) guardMessageStart(dst []byte, ev sse.Event, obj map[string]any) ([]byte, error) {
	msg, _ := obj["message"].(map[string]any)
	content, ok := msg["content"]
	if !ok || content == nil {
		return sse.AppendEvent(dst, ev)
	}
	if !h.x.out.Redact {
		h.x.out.InspectValue(h.x.ctx, content)
		return sse.AppendEvent(dst, ev)
	}
	changed, err := h.x.redactBlocks(h.x.ctx, content)
	if err != nil {
		return dst, errUnredactable
	}
	if !changed {
		return sse.AppendEvent(dst, ev)
	}
	return reencode(dst, ev, obj)
}

// guardStart opens a content block. A text block's text (empty, usually)
// goes through its stream; a thinking block's is checked like
// thinking_delta; under the redact obligation every other string of the
// block is redacted whole (tool_use input, server tool results), except a
// redacted_thinking block's, which is encrypted.
func (h *streamHook) guardStart(dst []byte, ev sse.Event, obj map[string]any) ([]byte, error) {
	redact := h.x.out.Redact
	idx, err := h.blockIndex(obj)
	if err != nil {
		return dst, err
	}
	cb, ok := obj["content_block"].(map[string]any)
	if !ok {
		if redact && openai.HasText(obj["content_block"]) {
			return dst, errMalformed
		}
		return sse.AppendEvent(dst, ev)
	}
	typ, _ := cb["type"].(string)
	field, kind := "", ""
	switch typ {
	case "text":
		field, kind = "text", "text"
	case "thinking":
		field, kind = "thinking", "thinking"
	case "redacted_thinking":
		return sse.AppendEvent(dst, ev)
	}
	changed := false
	if field != "" {
		switch v := cb[field].(type) {
		case nil:
		case string:
			out, err := h.write(blockKey{idx, kind}, v)
			if err != nil {
				return dst, err
			}
			if out != v {
				cb[field], changed = out, true
			}
		default:
			if redact {
				return dst, errMalformed
			}
			h.scanOther(blockKey{idx, "other"}, v)
		}
	}
	rest := make(map[string]any, len(cb))
	for k, v := range cb {
		// A tool call's id and name are identifiers (the client declared
		// the name): rewriting them would break the exchange.
		if (k == "id" || k == "name") && strings.HasSuffix(typ, "tool_use") {
			continue
		}
		if k != field && k != "type" && k != "signature" {
			rest[k] = v
		}
	}
	if !redact {
		if openai.HasText(rest) {
			h.scanOther(blockKey{idx, "other"}, rest)
		}
		return sse.AppendEvent(dst, ev)
	}
	if kind == "thinking" && openai.HasText(rest) {
		return dst, errMalformed // nothing else of a signed block may change
	}
	if _, c, err := h.x.out.RedactValue(h.x.ctx, rest); err != nil {
		return dst, errUnredactable
	} else if c {
		for k, v := range rest {
			cb[k] = v
		}
		changed = true
	}
	if !changed {
		return sse.AppendEvent(dst, ev)
	}
	return reencode(dst, ev, obj)
}

// write passes s through the stream k and returns what may go out now.
// Thinking is signed: under the redact obligation a finding in it is not
// redacted but cuts the stream (errUnredactable); what went out before
// it was clean.
func (h *streamHook) write(k blockKey, s string) (string, error) {
	st := h.open(k)
	out := st.Write(s)
	if k.kind == "thinking" && h.x.out.Redact && st.Findings() > 0 {
		return "", errUnredactable
	}
	return out, nil
}

// guardDelta passes a content_block_delta through its block's stream: in
// scan-only mode the event goes out as it came; under the redact
// obligation text_delta, input_json_delta and thinking_delta carry only
// what the stream released, citations_delta is redacted whole,
// signature_delta passes, and any other delta carrying text cuts the
// stream as malformed.
func (h *streamHook) guardDelta(dst []byte, ev sse.Event, obj, d map[string]any) ([]byte, error) {
	redact := h.x.out.Redact
	idx, err := h.blockIndex(obj)
	if err != nil {
		return dst, err
	}
	typ, _ := d["type"].(string)
	rest := make(map[string]any, len(d))
	for k, v := range d {
		if k != "type" {
			rest[k] = v
		}
	}
	if f, ok := deltaFields[typ]; ok {
		s, isStr := d[f[0]].(string)
		if !isStr && d[f[0]] != nil && redact {
			return dst, errMalformed
		}
		delete(rest, f[0])
		if redact && openai.HasText(rest) {
			return dst, errMalformed
		}
		if !redact && openai.HasText(rest) {
			h.scanOther(blockKey{idx, "other"}, rest)
		}
		out, err := h.write(blockKey{idx, f[1]}, s)
		if err != nil {
			return dst, err
		}
		if !redact || out == s {
			return sse.AppendEvent(dst, ev)
		}
		d[f[0]] = out
		return reencode(dst, ev, obj)
	}
	switch {
	case typ == "signature_delta":
		return sse.AppendEvent(dst, ev)
	case !openai.HasText(rest):
		return sse.AppendEvent(dst, ev)
	case !redact:
		h.scanOther(blockKey{idx, "other"}, rest)
		return sse.AppendEvent(dst, ev)
	case typ == "citations_delta":
		if _, c, err := h.x.out.RedactValue(h.x.ctx, rest); err != nil {
			return dst, errUnredactable
		} else if !c {
			return sse.AppendEvent(dst, ev)
		}
		for k, v := range rest {
			d[k] = v
		}
		return reencode(dst, ev, obj)
	}
	return dst, errMalformed
}

func reencode(dst []byte, ev sse.Event, obj map[string]any) ([]byte, error) {
	b, err := jsonstrict.Marshal(obj)
	if err != nil {
		return dst, errMalformed
	}
	ev.Data = string(b)
	return sse.AppendEvent(dst, ev)
}

// flush ends block idx's streams; under the redact obligation, and when
// emit is true, the held text goes out as one more delta of the block's
// kind. Held thinking with a finding is not sent: errUnredactable.
func (h *streamHook) flush(dst []byte, idx int64, emit bool) ([]byte, error) {
	for _, k := range h.keys {
		if k.idx != idx {
			continue
		}
		st := h.texts[k]
		out := st.Flush()
		if k.kind == "thinking" && h.x.out.Redact && st.Findings() > 0 {
			return dst, errUnredactable
		}
		if out == "" || !emit || !h.x.out.Redact {
			continue
		}
		var delta map[string]any
		switch k.kind {
		case "text":
			delta = map[string]any{"type": "text_delta", "text": out}
		case "json":
			delta = map[string]any{"type": "input_json_delta", "partial_json": out}
		case "thinking":
			delta = map[string]any{"type": "thinking_delta", "thinking": out}
		default:
			continue
		}
		b, err := jsonstrict.Marshal(map[string]any{"type": "content_block_delta", "index": idx, "delta": delta})
		if err != nil {
			continue
		}
		dst, _ = sse.AppendEvent(dst, sse.Event{Type: "content_block_delta", Data: string(b), HasData: true})
	}
	return dst, nil
}

// flushAll ends every block's streams, in the order they were opened.
func (h *streamHook) flushAll(dst []byte, emit bool) ([]byte, error) {
	var ferr error
	seen := map[int64]bool{}
	for _, k := range h.keys {
		if seen[k.idx] {
			continue
		}
		seen[k.idx] = true
		var err error
		if dst, err = h.flush(dst, k.idx, emit); err != nil && ferr == nil {
			ferr, emit = err, false
		}
	}
	return dst, ferr
}
