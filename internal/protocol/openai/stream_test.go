package openai

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/wardenhq/warden/internal/protocol"
	"github.com/wardenhq/warden/internal/protocol/llmtest"
)

func client(h *harness) openai.Client {
	return openai.NewClient(option.WithBaseURL(h.srv.URL+"/v1/"), option.WithAPIKey("test"), option.WithMaxRetries(0))
}

func chatParams(model string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello")}}
}

func TestChatStreamInjectsAndDropsUsage(t *testing.T) {
	h := newHarness(t, llmtest.Config{Chunks: 4}, Limits{}, nil)
	c := client(h)
	st := c.Chat.Completions.NewStreaming(context.Background(), chatParams("gpt-4o-mini"))
	var text strings.Builder
	chunks := 0
	for st.Next() {
		ch := st.Current()
		chunks++
		if len(ch.Choices) == 0 || ch.Usage.TotalTokens != 0 {
			t.Errorf("client saw a usage chunk it did not ask for: %s", ch.RawJSON())
		}
		for _, ch := range ch.Choices {
			text.WriteString(ch.Delta.Content)
		}
	}
	if err := st.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if text.String() != llmtest.Text(4) || chunks != 6 {
		t.Fatalf("text %q in %d chunks", text.String(), chunks)
	}
	var fwd map[string]any
	if err := json.Unmarshal(h.up.LastRequest().Body, &fwd); err != nil {
		t.Fatal(err)
	}
	if so, _ := fwd["stream_options"].(map[string]any); so["include_usage"] != true {
		t.Fatalf("upstream request did not ask for usage: %s", h.up.LastRequest().Body)
	}
	a := h.Audit()
	if a["usage_source"] != "reported" || a["prompt_tokens"] != int64(12) || a["completion_tokens"] != int64(4) || a["finish_reason"] != "stop" {
		t.Fatalf("audit %v", a)
	}
	if h.meter.Total != 16 {
		t.Fatalf("meter charged %d (%v), want the reported 16", h.meter.Total, h.meter.Charges)
	}
}

func TestChatStreamClientAskedForUsage(t *testing.T) {
	h := newHarness(t, llmtest.Config{Chunks: 2}, Limits{}, nil)
	c := client(h)
	p := chatParams("gpt-4o-mini")
	p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	st := c.Chat.Completions.NewStreaming(context.Background(), p)
	var usage int64
	for st.Next() {
		if ch := st.Current(); len(ch.Choices) == 0 {
			usage = ch.Usage.TotalTokens
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if usage != 14 {
		t.Fatalf("client usage chunk total %d, want 14", usage)
	}
}

func TestChatStreamToolCalls(t *testing.T) {
	h := newHarness(t, llmtest.Config{Chunks: 1}, Limits{}, nil)
	c := client(h)
	p := chatParams("gpt-4o")
	p.Tools = []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: "get_weather"})}
	st := c.Chat.Completions.NewStreaming(context.Background(), p)
	acc := openai.ChatCompletionAccumulator{}
	for st.Next() {
		acc.AddChunk(st.Current())
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	tc := acc.Choices[0].Message.ToolCalls
	if len(tc) != 1 || tc[0].Function.Name != "get_weather" || tc[0].Function.Arguments != `{"city":"Paris"}` {
		t.Fatalf("tool calls %+v", tc)
	}
	h.mu.Lock()
	tools := h.calls[0].Resource["tools"]
	h.mu.Unlock()
	if ts, _ := tools.([]string); len(ts) != 1 || ts[0] != "get_weather" {
		t.Fatalf("resource tools %v", tools)
	}
}

func TestChatStreamBudgetCutoff(t *testing.T) {
	h := newHarness(t, llmtest.Config{Chunks: 20}, Limits{}, nil)
	h.meter.Budget = 6 // prompt estimate (3) + a few chunks
	c := client(h)
	st := c.Chat.Completions.NewStreaming(context.Background(), chatParams("gpt-4o-mini"))
	n := 0
	for st.Next() {
		n++
	}
	err := st.Err()
	if err == nil || !strings.Contains(err.Error(), "budget_exhausted") {
		t.Fatalf("stream error %v after %d chunks, want budget_exhausted", err, n)
	}
	if n == 0 || n >= 20 {
		t.Fatalf("%d chunks before the cut-off", n)
	}
	if a := h.Audit(); a["cutoff_reason"] != "budget_exhausted" {
		t.Fatalf("audit %v", a)
	}
	if h.meter.Total > 6 {
		t.Fatalf("charged %d over the budget", h.meter.Total)
	}
}

// rawStream posts body and returns the SSE response lines.
func rawStream(t *testing.T, h *harness, path, body string, after func(lines []string)) []string {
	t.Helper()
	resp, err := http.Post(h.srv.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if after != nil {
			after(lines)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("stream read: %v (lines %q)", err, lines)
	}
	return lines
}

func TestCutoffIsLastEvent(t *testing.T) {
	h := newHarness(t, llmtest.Config{Chunks: 20}, Limits{}, nil)
	h.meter.Budget = 6
	lines := rawStream(t, h, "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"Say hello"}],"stream":true}`, nil)
	if len(lines) < 2 || lines[len(lines)-1] != "" {
		t.Fatalf("stream does not end with a complete event: %q", lines)
	}
	last := lines[len(lines)-2]
	if !strings.HasPrefix(last, `data: {"error":{`) || !strings.Contains(last, `"code":"budget_exhausted"`) || !strings.Contains(last, `"type":"insufficient_quota"`) {
		t.Fatalf("last event %q", last)
	}
	for _, l := range lines[:len(lines)-2] {
		if strings.Contains(l, "[DONE]") || strings.Contains(l, "error") {
			t.Fatalf("unexpected line before the cut-off: %q", l)
		}
	}
}

func TestStreamCaps(t *testing.T) {
	t.Run("bytes", func(t *testing.T) {
		h := newHarness(t, llmtest.Config{Endless: true}, Limits{MaxStreamBytes: 2000}, nil)
		lines := rawStream(t, h, "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true}`, nil)
		last := lines[len(lines)-2]
		if !strings.Contains(last, `"code":"stream_limit_exceeded"`) {
			t.Fatalf("last event %q", last)
		}
		if a := h.Audit(); a["cutoff_reason"] != "stream_bytes_exceeded" {
			t.Fatalf("audit %v", a)
		}
	})
	t.Run("time", func(t *testing.T) {
		timer := &manualTimer{}
		h := newHarness(t, llmtest.Config{Endless: true}, Limits{MaxStreamDuration: 1}, timer)
		fired := false
		lines := rawStream(t, h, "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true}`, func(lines []string) {
			if !fired && len(lines) > 10 {
				fired = true
				timer.fire()
			}
		})
		last := lines[len(lines)-2]
		if !strings.Contains(last, `"code":"stream_limit_exceeded"`) || !strings.Contains(last, "time limit") {
			t.Fatalf("last event %q", last)
		}
		if a := h.Audit(); a["cutoff_reason"] != "stream_time_exceeded" {
			t.Fatalf("audit %v", a)
		}
	})
}

func TestChatNonStreaming(t *testing.T) {
	h := newHarness(t, llmtest.Config{Chunks: 3}, Limits{}, nil)
	c := client(h)
	res, err := c.Chat.Completions.New(context.Background(), chatParams("gpt-4o-mini"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Choices[0].Message.Content != llmtest.Text(3) || res.Usage.TotalTokens != 15 {
		t.Fatalf("response %s", res.RawJSON())
	}
	if h.meter.Total != 15 {
		t.Fatalf("charged %d", h.meter.Total)
	}
	h.meter.Budget = 15
	_, err = c.Chat.Completions.New(context.Background(), chatParams("gpt-4o-mini"))
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.StatusCode != http.StatusTooManyRequests || oe.Code != protocol.CodeBudgetExhausted {
		t.Fatalf("over budget: %v", err)
	}
}

func TestClientSeesErrors(t *testing.T) {
	h := newHarness(t, llmtest.Config{}, Limits{MaxTokensCap: 100}, nil)
	c := client(h)
	p := chatParams("gpt-4o")
	p.MaxCompletionTokens = openai.Int(101)
	_, err := c.Chat.Completions.New(context.Background(), p)
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.StatusCode != 400 || oe.Code != CodeMaxTokensExceeded || oe.Param != "max_completion_tokens" || oe.Type != "invalid_request_error" {
		t.Fatalf("err %v", err)
	}
	if h.up.Requests() != 0 {
		t.Fatal("a refused request reached the upstream")
	}
}

func TestModelsFiltered(t *testing.T) {
	h := newHarness(t, llmtest.Config{}, Limits{}, nil)
	h.decide = func(c protocol.Call) bool {
		return c.Action != protocol.ActionInvoke || c.Resource["model"] == "gpt-4o-mini"
	}
	c := client(h)
	page, err := c.Models.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 1 || page.Data[0].ID != "gpt-4o-mini" {
		t.Fatalf("models %+v", page.Data)
	}
	if a := h.Audit(); a["models_returned"] != 1 {
		t.Fatalf("audit %v", a)
	}
	if m, err := c.Models.Get(context.Background(), "gpt-4o-mini"); err != nil || m.ID != "gpt-4o-mini" {
		t.Fatalf("allowed model: %v %v", m, err)
	}
	_, err = c.Models.Get(context.Background(), "gpt-4o")
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.StatusCode != 404 || oe.Code != CodeModelNotFound {
		t.Fatalf("hidden model: %v", err)
	}
}

func TestModelsWithoutAuthorizerFailClosed(t *testing.T) {
	p := New(Config{})
	req := goldenCase{Method: "GET", Path: "/v1/models"}.request()
	x, err := p.Parse(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: nopCloser([]byte(`{"object":"list","data":[{"id":"a"}]}`))}
	if err := x.Response(context.Background(), resp, &protocol.ResponseEnv{}); err == nil {
		t.Fatal("model list passed without an authorizer")
	}
}

func TestEmbeddings(t *testing.T) {
	h := newHarness(t, llmtest.Config{}, Limits{}, nil)
	c := client(h)
	res, err := c.Embeddings.New(context.Background(), openai.EmbeddingNewParams{Model: "text-embedding-3-small",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a", "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Data) != 2 || h.meter.Total != 12 {
		t.Fatalf("data %d charged %d", len(res.Data), h.meter.Total)
	}
}

func TestResponsesStream(t *testing.T) {
	h := newHarness(t, llmtest.Config{Chunks: 3}, Limits{}, nil)
	c := client(h)
	st := c.Responses.NewStreaming(context.Background(), responses.ResponseNewParams{Model: "gpt-5",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}})
	var text strings.Builder
	completed := false
	for st.Next() {
		ev := st.Current()
		switch ev.Type {
		case "response.output_text.delta":
			text.WriteString(ev.Delta)
		case "response.completed":
			completed = ev.Response.Usage.TotalTokens == 15
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if text.String() != llmtest.Text(3) || !completed {
		t.Fatalf("text %q completed %v", text.String(), completed)
	}
	if a := h.Audit(); a["usage_source"] != "reported" || a["total_tokens"] != int64(15) || a["finish_reason"] != "completed" {
		t.Fatalf("audit %v", a)
	}
}

func TestResponsesStreamCutoff(t *testing.T) {
	h := newHarness(t, llmtest.Config{Chunks: 30}, Limits{}, nil)
	h.meter.Budget = 5
	c := client(h)
	st := c.Responses.NewStreaming(context.Background(), responses.ResponseNewParams{Model: "gpt-5",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}})
	var last responses.ResponseStreamEventUnion
	for st.Next() {
		last = st.Current()
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if last.Type != "error" || last.Code != protocol.CodeBudgetExhausted {
		t.Fatalf("last event %s", last.RawJSON())
	}
}

func TestResponsesMCPDenied(t *testing.T) {
	h := newHarness(t, llmtest.Config{}, Limits{}, nil)
	h.decide = func(c protocol.Call) bool { return c.Action != ActionConnectExternal }
	c := client(h)
	_, err := c.Responses.New(context.Background(), responses.ResponseNewParams{Model: "gpt-5",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
		Tools: []responses.ToolUnionParam{{OfMcp: &responses.ToolMcpParam{ServerLabel: "deepwiki", ServerURL: openai.String("https://mcp.deepwiki.com/mcp")}}}})
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.StatusCode != 403 || oe.Code != protocol.CodePolicyDenied {
		t.Fatalf("err %v", err)
	}
	h.mu.Lock()
	calls := h.calls
	h.mu.Unlock()
	if len(calls) != 2 || calls[1].Action != ActionConnectExternal {
		t.Fatalf("calls %+v", calls)
	}
	if h.up.Requests() != 0 {
		t.Fatal("denied request reached upstream")
	}
}
