package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/wardenhq/warden/internal/protocol/llmtest"
)

func (s *stack) openai(agent string) openai.Client {
	return openai.NewClient(
		option.WithBaseURL(s.url+"/v1/"),
		option.WithHTTPClient(s.clients[agent]),
		option.WithAPIKey("unused: identity comes from the client certificate"),
		option.WithMaxRetries(0),
	)
}

// TestOpenAIGoSDK drives Warden with the official Go SDK over mTLS.
func TestOpenAIGoSDK(t *testing.T) {
	s := newStack(t, stackOpts{})
	ctx := context.Background()
	c := s.openai("support")

	// Non-streaming chat on an allowed model.
	resp, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: "small", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Choices[0].Message.Content != llmtest.Text(8) || resp.Usage.TotalTokens == 0 {
		t.Fatalf("chat: %q usage %d", resp.Choices[0].Message.Content, resp.Usage.TotalTokens)
	}
	if got := s.llm.LastRequest().Header.Get("X-Warden-Spiffe-Id"); got != agents["support"] {
		t.Errorf("upstream saw identity %q", got)
	}

	// Streaming chat: the client sees exactly the upstream's deltas, and no
	// usage chunk it did not ask for (Warden asked for one itself).
	st := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model: "small", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("stream")},
	})
	acc := openai.ChatCompletionAccumulator{}
	for st.Next() {
		ch := st.Current()
		if len(ch.Choices) == 0 {
			t.Errorf("client received a usage-only chunk it did not ask for")
		}
		acc.AddChunk(ch)
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if got := acc.Choices[0].Message.Content; got != llmtest.Text(8) {
		t.Fatalf("stream text %q", got)
	}
	var fwd map[string]any
	_ = json.Unmarshal(s.llm.LastRequest().Body, &fwd)
	if so, _ := fwd["stream_options"].(map[string]any); so["include_usage"] != true {
		t.Errorf("Warden did not ask the upstream for usage: %s", s.llm.LastRequest().Body)
	}

	// The models list is filtered to what the caller may use.
	page, err := c.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range page.Data {
		ids = append(ids, m.ID)
	}
	if strings.Join(ids, ",") != "small" {
		t.Errorf("support sees models %v, want [small]", ids)
	}
	if _, err := c.Models.Get(ctx, "large"); err == nil {
		t.Error("support can retrieve the model it may not use")
	}

	// A model the caller may not use: an OpenAI error object, 403.
	before := s.llm.Requests()
	_, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: "large", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")},
	})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 || apiErr.Code != "policy_denied" {
		t.Fatalf("large model: %v", err)
	}
	if s.llm.Requests() != before {
		t.Error("denied request reached the upstream")
	}

	// Tools outside Warden (a remote MCP server via /v1/responses) are a
	// separate action the default policy does not grant, even to full access.
	full := s.openai("training")
	_, err = full.Responses.New(ctx, responses.ResponseNewParams{
		Model: "small",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
		Tools: []responses.ToolUnionParam{{OfMcp: &responses.ToolMcpParam{ServerLabel: "x", ServerURL: openai.String("https://mcp.example.com")}}},
	})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 {
		t.Fatalf("responses with an mcp tool: %v", err)
	}

	// Embeddings.
	emb, err := full.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: "small", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("vector me")},
	})
	if err != nil || len(emb.Data) == 0 {
		t.Fatalf("embeddings: %v", err)
	}

	m := s.metrics()
	for _, want := range []string{
		`warden_llm_tokens_total{kind="completion",model="small",spiffe_id="spiffe://warden.test/agent/support"}`,
		`warden_requests_total{decision="deny",listener="data",route="llm/v1/",status="403"}`,
		`warden_policy_eval_seconds_bucket`,
		`warden_audit_write_seconds_bucket`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestOpenAINodeClient drives Warden with the official openai npm client.
func TestOpenAINodeClient(t *testing.T) {
	s := newStack(t, stackOpts{})
	out := runNode(t, "openai_client.mjs",
		"WARDEN_URL="+s.url, "SVID_DIR="+s.dev.SVIDDir("support"), "MODEL_DENIED=large")
	var got struct {
		Chat struct {
			Content     string `json:"content"`
			TotalTokens int    `json:"total_tokens"`
		} `json:"chat"`
		Stream struct {
			Text   string `json:"text"`
			Chunks int    `json:"chunks"`
		} `json:"stream"`
		Models         []string `json:"models"`
		UnexpectedUsge bool     `json:"unexpected_usage_chunk"`
		Denied         struct {
			Status int    `json:"status"`
			Code   string `json:"code"`
		} `json:"denied"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	if got.Chat.Content != llmtest.Text(8) || got.Chat.TotalTokens == 0 {
		t.Errorf("chat: %+v", got.Chat)
	}
	if got.Stream.Text != llmtest.Text(8) || got.UnexpectedUsge {
		t.Errorf("stream: %+v (usage chunk leaked: %v)", got.Stream, got.UnexpectedUsge)
	}
	if strings.Join(got.Models, ",") != "small" {
		t.Errorf("models %v", got.Models)
	}
	if got.Denied.Status != 403 || got.Denied.Code != "policy_denied" {
		t.Errorf("denied: %+v", got.Denied)
	}
}
