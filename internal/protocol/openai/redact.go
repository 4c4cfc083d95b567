package openai

import (
	"context"
	"fmt"
	"net/http"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
)

// ObligationRedact asks the exchange to redact secrets and personal data
// from the model's output before the client sees it. Its value must be
// true. It is honoured for non-streaming chat completions only, and only
// when the protocol has a Redactor; it is a no-op where no generated text
// comes back (embeddings, models); anywhere else (streams, completions,
// Responses) the request is refused (unsupported_obligation), never
// forwarded unredacted.
const ObligationRedact = "redact"

// Redactor returns text with what must not reach the client replaced by
// placeholders. ok false means the text could not be fully scanned (budget);
// the response is then withheld.
type Redactor func(ctx context.Context, text string) (out string, ok bool)

// WithRedactor returns a copy of p that honours the redact obligation with r.
func (p *Protocol) WithRedactor(r Redactor) *Protocol {
	q := *p
	q.cfg.Redactor = r
	return &q
}

// redactWanted reports whether any decision carries the redact obligation,
// and refuses one this exchange cannot apply.
func (x *exchange) redactWanted(ds []protocol.Decision) (bool, error) {
	want := false
	for _, d := range ds {
		v, ok := d.Obligations[ObligationRedact]
		if !ok {
			continue
		}
		if v != true {
			return false, obligationRejected(fmt.Errorf("openai: redact obligation must be true, got %v", v))
		}
		want = true
	}
	switch x.op {
	case opEmbeddings, opModelsList, opModelsRetrieve:
		// No generated text comes back: nothing to redact.
		return false, nil
	}
	if want && (x.p.cfg.Redactor == nil || x.op != opChat || x.stream) {
		return false, obligationRejected(fmt.Errorf("openai: redact is applied to non-streaming chat completions with guard configured only (op %s, stream %v)", x.op, x.stream))
	}
	return want, nil
}

func obligationRejected(err error) *protocol.Error {
	return &protocol.Error{Status: http.StatusForbidden, Code: CodeObligationRejected, Message: "request denied: policy attached a condition this endpoint cannot apply", Err: err}
}

// redactChat rewrites choices[].message.content and .refusal of a chat
// completion through the Redactor and returns the re-encoded body. It
// returns raw unchanged when nothing was redacted.
func (x *exchange) redactChat(ctx context.Context, raw []byte) ([]byte, error) {
	v, err := jsonstrict.Parse(raw, jsonstrict.Options{MaxBytes: x.lim.MaxResponseBytes})
	if err != nil {
		return nil, &protocol.Error{Status: http.StatusBadGateway, Code: CodeUpstreamMalformed, Message: "upstream returned a malformed response", Err: fmt.Errorf("openai: response: %w", err)}
	}
	root, _ := v.(map[string]any)
	choices, _ := root["choices"].([]any)
	changed := false
	for _, c := range choices {
		co, _ := c.(map[string]any)
		msg, _ := co["message"].(map[string]any)
		for _, k := range []string{"content", "refusal"} {
			s, ok := msg[k].(string)
			if !ok || s == "" {
				continue
			}
			out, ok := x.p.cfg.Redactor(ctx, s)
			if !ok {
				return nil, &protocol.Error{Status: http.StatusBadGateway, Code: protocol.CodeGuardBlocked, Message: "response withheld: it could not be scanned for redaction",
					Err: fmt.Errorf("openai: redact: scan over budget")}
			}
			if out != s {
				msg[k] = out
				changed = true
				x.redacted++
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
