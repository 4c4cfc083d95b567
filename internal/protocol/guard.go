package protocol

import "context"

// Guard contexts: where a text came from. The same words weigh differently
// in a user turn than in a tool description, so the detectors' thresholds
// are per context (docs/guardrails.md).
const (
	GuardUser            = "user"
	GuardToolOutput      = "tool_output"
	GuardToolDescription = "tool_description"
	GuardDocument        = "document"
	GuardResponse        = "response"
)

// Guard is the gateway's content inspection (internal/guard under the
// configured thresholds, budgets and fail mode), lent to a protocol so it can
// scan and redact the text only it can find: a model's output, streamed or
// not; MCP tool results and tool definitions; retrieved documents; the
// strings of a prompt to redact before forwarding.
//
// Request.Guard is nil when guardrails are off. A protocol must then refuse
// (fail closed) any obligation that needs one, and must not claim in its
// audit fields that a text was scanned.
type Guard interface {
	// Inspect scans v as seen in context (one of the Guard* constants): a
	// string, or a decoded JSON value whose every string and object key is
	// scanned. It never fails: a scan that cannot finish within budget is
	// reported in the Inspection (over_budget) and, under fail mode closed,
	// blocks.
	Inspect(ctx context.Context, context string, v any) Inspection
	// Redact returns text with the findings of the given categories
	// ("secret", "pii"; none given: both) replaced by "[REDACTED:<rule>]",
	// and the rule ids it replaced (nil when none). ok false means the text
	// could not be fully scanned within budget under fail mode closed: the
	// caller must withhold it, never pass it on.
	Redact(ctx context.Context, context, text string, categories ...string) (out string, rules []string, ok bool)
	// NewStream returns a redactor for one stream of text in context (one
	// per choice, per content block: it is not safe for concurrent use).
	NewStream(context string) StreamGuard
}

// Inspection is the verdict on one text or value. It never holds the text.
type Inspection struct {
	// Blocked is true when a category reached the context's threshold, or
	// the scan went over budget under fail mode closed.
	Blocked bool
	// Findings is the number of findings (0: nothing found).
	Findings int
	// Verdict has the shape of input.guards (blocked, over_budget,
	// blocked_by, blocked_contexts, categories{count,max_score,rules}): put it
	// in Call.Guards to let policy decide on it, or in the audit fields.
	// Nil when nothing was found and the scan finished.
	Verdict map[string]any
}

// StreamGuard redacts one stream of text whose chunks may split a secret
// anywhere: it holds back a bounded look-behind window and emits only text
// that can no longer become part of a finding.
type StreamGuard interface {
	// Write consumes p and returns the redacted text now safe to emit
	// (possibly empty). The returned slice is the caller's.
	Write(p []byte) []byte
	// Flush returns everything still held, redacted. Call it once, at the end
	// of the stream (or of the content block).
	Flush() []byte
	// Found counts the findings redacted so far, by rule id.
	Found() map[string]int
}
