package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"
)

const awsKey = "AKIAZ3MKQWERTY7N5X2P"

// outcomeFor returns the outcome record of the request whose decision
// record carries reason.
func (s *stack) outcomeFor(reason string) map[string]any {
	s.t.Helper()
	dec := s.decisionFor(reason)
	id := dec["request_id"].(string)
	f := s.waitAudit(`"outcome"`)
	for _, l := range strings.Split(f, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(l), &rec) == nil && rec["event"] == "outcome" && rec["request_id"] == id {
			return rec
		}
	}
	s.t.Fatalf("no outcome record for %s", id)
	return nil
}

// TestGuardPromptRedaction: with the default policy, a secret pasted into a
// prompt toward a tool-using model is redacted before the upstream sees it
// (redact_prompt), not refused; the decision record names the obligation
// and the rule, never the key. Driven by the official openai-go client.
func TestGuardPromptRedaction(t *testing.T) {
	s := newStack(t, stackOpts{extra: "guard: {}\n"})
	c := s.openai("support")
	tools := []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "get_weather"})}
	_, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "small", Tools: tools,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("deploy the bucket with access key " + awsKey + " today")},
	})
	if err != nil {
		t.Fatalf("a secret in the prompt should be redacted, not refused: %v", err)
	}
	up := string(s.llm.LastRequest().Body)
	if strings.Contains(up, awsKey) || !strings.Contains(up, "[REDACTED:secret.aws-access-token]") {
		t.Fatalf("upstream received: %s", up)
	}
	rec := s.decisionFor("allowed_by_role:support")
	if !strings.Contains(mustJSON(t, rec["obligations"]), "redact_prompt") {
		t.Errorf("decision record obligations = %v", rec["obligations"])
	}
	if strings.Contains(s.auditFile(), awsKey) {
		t.Error("audit log holds the key")
	}
	m := s.metrics()
	for _, want := range []string{
		`warden_guard_findings_total{category="secret",phase="request"} 1`,
		`warden_guard_actions_total{action="redacted",phase="request"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestGuardStreamedOutput: a model reply that carries a key is redacted
// whole, streamed (the key cut across deltas) and not, under the redact
// obligation; without it the stream passes unchanged but is scanned, and the
// outcome record says what was seen (rule ids only).
func TestGuardStreamedOutput(t *testing.T) {
	ctx := context.Background()
	reply := "Here you go: the deploy key is " + awsKey + ". Keep it safe, and rotate it monthly."
	msgs := []openai.ChatCompletionMessageParamUnion{openai.UserMessage("what is the deploy key?")}
	stream := func(c openai.Client) string {
		st := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "small", Messages: msgs})
		var b strings.Builder
		for st.Next() {
			for _, ch := range st.Current().Choices {
				b.WriteString(ch.Delta.Content)
			}
		}
		if st.Err() != nil {
			t.Fatalf("stream: %v", st.Err())
		}
		return b.String()
	}

	red := newStack(t, stackOpts{roles: redactRoles, extra: "guard: {}\n", reply: reply})
	c := red.openai("support")
	got := stream(c)
	if strings.Contains(got, awsKey) || !strings.Contains(got, "[REDACTED:secret.aws-access-token]") || !strings.HasSuffix(got, "rotate it monthly.") {
		t.Errorf("redacted stream = %q", got)
	}
	resp, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "small", Messages: msgs})
	if err != nil {
		t.Fatalf("non-streaming: %v", err)
	}
	if m := resp.Choices[0].Message.Content; strings.Contains(m, awsKey) || !strings.Contains(m, "[REDACTED:secret.aws-access-token]") {
		t.Errorf("non-streaming content = %q", m)
	}
	if strings.Contains(red.auditFile(), awsKey) {
		t.Error("audit log holds the key")
	}

	flag := newStack(t, stackOpts{extra: "guard: {}\n", reply: reply})
	fc := flag.openai("support")
	if got := stream(fc); got != reply {
		t.Errorf("scan-only stream changed the text: %q", got)
	}
	out := flag.outcomeFor("allowed_by_role:support")
	rg := mustJSON(t, out["protocol"])
	if !strings.Contains(rg, `"scanned":true`) || !strings.Contains(rg, "secret.aws-access-token") || strings.Contains(rg, awsKey) {
		t.Errorf("outcome protocol fields = %s", rg)
	}
	if m := flag.metrics(); !strings.Contains(m, `warden_guard_findings_total{category="secret",phase="response"}`) {
		t.Error("metrics lack the response-side secret finding")
	}
	if m := red.metrics(); !strings.Contains(m, `warden_guard_actions_total{action="redacted",phase="response"}`) {
		t.Error("metrics lack the response-side redaction")
	}
}
