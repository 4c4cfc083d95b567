// Package llmtest is a real OpenAI- and Anthropic-compatible upstream for
// tests: an HTTP server on 127.0.0.1 (plaintext or with a given TLS config)
// that answers chat/completions, completions, embeddings, models,
// responses and messages the way the real APIs do, including their
// streaming formats (OpenAI chunks with text and tool-call deltas and the
// include_usage chunk, Responses events, Anthropic message events).
//
// It exists so protocol and gateway tests exercise real HTTP, real SSE
// framing and the official clients instead of mocks. It records the last
// request it received so a test can assert exactly what Warden forwarded.
package llmtest

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Config shapes the server's answers. Zero fields take the defaults.
type Config struct {
	// Chunks is the number of content deltas a stream carries. Default 5.
	Chunks int
	// Delay is slept before each streamed delta. Default 0.
	Delay time.Duration
	// Endless makes streams send deltas until the client goes away (for
	// stream caps). Chunks is then ignored.
	Endless bool
	// Models is the model list served by GET /v1/models. Default
	// ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5"].
	Models []string
	// PromptTokens is the input token count reported in usage. Default 12.
	PromptTokens int
	// TLS serves HTTPS with this config when non-nil.
	TLS *tls.Config
	// Reply, when set, is the generated text instead of "tok0 tok1 ...":
	// whole in non-streaming answers, cut into Chunks byte-sized pieces
	// (on rune boundaries, so a secret in it is split across deltas) in
	// streams. Ignored by Endless streams.
	Reply string
}

// Request is a request as the server received it.
type Request struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// Server is a running upstream.
type Server struct {
	// URL is the base URL, e.g. "http://127.0.0.1:41234".
	URL string
	cfg Config
	srv *http.Server
	ln  net.Listener

	mu   sync.Mutex
	last *Request
	n    int
}

// Start listens on 127.0.0.1 and serves until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.Chunks <= 0 {
		cfg.Chunks = 5
	}
	if cfg.Models == nil {
		cfg.Models = []string{"gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5"}
	}
	if cfg.PromptTokens <= 0 {
		cfg.PromptTokens = 12
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("llmtest: listen: %w", err)
	}
	s := &Server{cfg: cfg, ln: ln}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	scheme := "http"
	if cfg.TLS != nil {
		scheme = "https"
		ln = tls.NewListener(ln, cfg.TLS)
	}
	s.URL = scheme + "://" + s.ln.Addr().String()
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the server and drops open streams.
func (s *Server) Close() { _ = s.srv.Close() }

// LastRequest returns the most recent request received (nil if none).
func (s *Server) LastRequest() *Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Requests returns how many requests were received.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		http.Error(w, "read error", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.last = &Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
	s.n++
	s.mu.Unlock()

	var req map[string]any
	if r.Method == http.MethodPost {
		if err := json.Unmarshal(body, &req); err != nil {
			openaiError(w, http.StatusBadRequest, "invalid JSON body")
			return
		}
	}
	p := r.URL.Path
	switch {
	case r.Method == http.MethodPost && p == "/v1/chat/completions":
		s.chat(w, r, req, false)
	case r.Method == http.MethodPost && p == "/v1/completions":
		s.chat(w, r, req, true)
	case r.Method == http.MethodPost && p == "/v1/embeddings":
		s.embeddings(w, req)
	case r.Method == http.MethodPost && p == "/v1/responses":
		s.responses(w, r, req)
	case r.Method == http.MethodPost && p == "/v1/messages":
		s.messages(w, r, req)
	case r.Method == http.MethodPost && p == "/v1/messages/count_tokens":
		writeJSON(w, map[string]any{"input_tokens": s.cfg.PromptTokens})
	case r.Method == http.MethodGet && p == "/v1/models":
		data := []any{}
		for _, m := range s.cfg.Models {
			data = append(data, model(m))
		}
		writeJSON(w, map[string]any{"object": "list", "data": data})
	case r.Method == http.MethodGet && strings.HasPrefix(p, "/v1/models/"):
		id := strings.TrimPrefix(p, "/v1/models/")
		for _, m := range s.cfg.Models {
			if m == id {
				writeJSON(w, model(m))
				return
			}
		}
		openaiError(w, http.StatusNotFound, "model not found")
	default:
		openaiError(w, http.StatusNotFound, "unknown path")
	}
}

func model(id string) map[string]any {
	return map[string]any{"id": id, "object": "model", "created": 1700000000, "owned_by": "llmtest"}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func openaiError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error", "param": nil, "code": nil}})
}

// stream writes SSE events, flushing each; it reports false once the
// client has gone.
type stream struct {
	w http.ResponseWriter
	r *http.Request
}

func startStream(w http.ResponseWriter, r *http.Request) *stream {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	return &stream{w: w, r: r}
}

func (st *stream) send(event string, v any) bool {
	var b strings.Builder
	if event != "" {
		b.WriteString("event: " + event + "\n")
	}
	if s, ok := v.(string); ok {
		b.WriteString("data: " + s + "\n\n")
	} else {
		j, _ := json.Marshal(v)
		b.WriteString("data: " + string(j) + "\n\n")
	}
	if _, err := io.WriteString(st.w, b.String()); err != nil {
		return false
	}
	if err := http.NewResponseController(st.w).Flush(); err != nil {
		return false
	}
	return st.r.Context().Err() == nil
}

func (s *Server) pause(r *http.Request) bool {
	if s.cfg.Delay <= 0 {
		return r.Context().Err() == nil
	}
	t := time.NewTimer(s.cfg.Delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// deltas returns how many deltas to send (-1 = endless).
func (s *Server) deltas() int {
	if s.cfg.Endless {
		return -1
	}
	return s.cfg.Chunks
}

// text is the whole generated content.
func (s *Server) text() string {
	if s.cfg.Reply != "" {
		return s.cfg.Reply
	}
	return Text(s.cfg.Chunks)
}

// piece is the i-th streamed delta.
func (s *Server) piece(i int) string {
	if s.cfg.Reply == "" || s.cfg.Endless {
		return fmt.Sprintf("tok%d ", i)
	}
	r := s.cfg.Reply
	n := s.cfg.Chunks
	cut := func(k int) int {
		j := len(r) * k / n
		for j < len(r) && !utf8.RuneStart(r[j]) {
			j++
		}
		return j
	}
	return r[cut(i):cut(i+1)]
}

// Text is the content the server generates: "tok0 tok1 ...".
func Text(chunks int) string {
	var b strings.Builder
	for i := range chunks {
		b.WriteString(fmt.Sprintf("tok%d ", i))
	}
	return b.String()
}

func firstToolName(req map[string]any) string {
	tools, _ := req["tools"].([]any)
	for _, t := range tools {
		tm, _ := t.(map[string]any)
		if f, ok := tm["function"].(map[string]any); ok {
			if n, ok := f["name"].(string); ok {
				return n
			}
		}
		if n, ok := tm["name"].(string); ok {
			return n
		}
	}
	return ""
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request, req map[string]any, legacy bool) {
	modelName, _ := req["model"].(string)
	stream, _ := req["stream"].(bool)
	tool := ""
	if !legacy {
		tool = firstToolName(req)
	}
	object, chunkObject := "chat.completion", "chat.completion.chunk"
	if legacy {
		object, chunkObject = "text_completion", "text_completion"
	}
	base := func(obj string) map[string]any {
		return map[string]any{"id": "chatcmpl-llmtest", "object": obj, "created": 1700000000, "model": modelName, "system_fingerprint": "fp_llmtest"}
	}
	if !stream {
		out := base(object)
		finish := "stop"
		var choice map[string]any
		if legacy {
			choice = map[string]any{"index": 0, "text": s.text(), "finish_reason": finish, "logprobs": nil}
		} else {
			msg := map[string]any{"role": "assistant", "content": s.text(), "refusal": nil}
			if tool != "" {
				finish = "tool_calls"
				msg["content"] = nil
				msg["tool_calls"] = []any{map[string]any{"id": "call_llmtest", "type": "function", "function": map[string]any{"name": tool, "arguments": `{"city":"Paris"}`}}}
			}
			choice = map[string]any{"index": 0, "message": msg, "finish_reason": finish, "logprobs": nil}
		}
		out["choices"] = []any{choice}
		out["usage"] = s.usage(s.cfg.Chunks)
		writeJSON(w, out)
		return
	}
	includeUsage := false
	if so, ok := req["stream_options"].(map[string]any); ok {
		includeUsage, _ = so["include_usage"].(bool)
	}
	st := startStream(w, r)
	chunk := func(delta map[string]any, finish any) map[string]any {
		c := base(chunkObject)
		var choice map[string]any
		if legacy {
			text, _ := delta["content"].(string)
			choice = map[string]any{"index": 0, "text": text, "finish_reason": finish, "logprobs": nil}
		} else {
			choice = map[string]any{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": nil}
		}
		c["choices"] = []any{choice}
		if includeUsage {
			c["usage"] = nil
		}
		return c
	}
	if !legacy && !st.send("", chunk(map[string]any{"role": "assistant", "content": ""}, nil)) {
		return
	}
	sent := 0
	for i := 0; s.deltas() < 0 || i < s.deltas(); i++ {
		if !s.pause(r) || !st.send("", chunk(map[string]any{"content": s.piece(i)}, nil)) {
			return
		}
		sent++
	}
	finish := "stop"
	if tool != "" {
		finish = "tool_calls"
		frags := []string{`{"ci`, `ty":"Pa`, `ris"}`}
		for j, frag := range frags {
			tc := map[string]any{"index": 0, "function": map[string]any{"arguments": frag}}
			if j == 0 {
				tc["id"], tc["type"] = "call_llmtest", "function"
				tc["function"] = map[string]any{"name": tool, "arguments": frag}
			}
			if !st.send("", chunk(map[string]any{"tool_calls": []any{tc}}, nil)) {
				return
			}
		}
	}
	if !st.send("", chunk(map[string]any{}, finish)) {
		return
	}
	if includeUsage {
		c := base(chunkObject)
		c["choices"] = []any{}
		c["usage"] = s.usage(sent)
		if !st.send("", c) {
			return
		}
	}
	st.send("", "[DONE]")
}

func (s *Server) usage(completion int) map[string]any {
	return map[string]any{"prompt_tokens": s.cfg.PromptTokens, "completion_tokens": completion, "total_tokens": s.cfg.PromptTokens + completion}
}

func (s *Server) embeddings(w http.ResponseWriter, req map[string]any) {
	var n int
	switch in := req["input"].(type) {
	case string:
		n = 1
	case []any:
		n = len(in)
		if len(in) > 0 {
			if _, ok := in[0].(float64); ok {
				n = 1 // one token array
			}
		}
	}
	data := []any{}
	for i := range n {
		data = append(data, map[string]any{"object": "embedding", "index": i, "embedding": []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8}})
	}
	writeJSON(w, map[string]any{"object": "list", "data": data, "model": req["model"],
		"usage": map[string]any{"prompt_tokens": s.cfg.PromptTokens, "total_tokens": s.cfg.PromptTokens}})
}

func (s *Server) responses(w http.ResponseWriter, r *http.Request, req map[string]any) {
	modelName, _ := req["model"].(string)
	stream, _ := req["stream"].(bool)
	resp := func(status string, text string, n int) map[string]any {
		out := map[string]any{"id": "resp_llmtest", "object": "response", "created_at": 1700000000, "status": status, "model": modelName,
			"output": []any{}, "usage": nil}
		if status == "completed" {
			out["output"] = []any{map[string]any{"id": "msg_llmtest", "type": "message", "role": "assistant", "status": "completed",
				"content": []any{map[string]any{"type": "output_text", "text": text, "annotations": []any{}}}}}
			out["usage"] = map[string]any{"input_tokens": s.cfg.PromptTokens, "input_tokens_details": map[string]any{"cached_tokens": 0},
				"output_tokens": n, "output_tokens_details": map[string]any{"reasoning_tokens": 0}, "total_tokens": s.cfg.PromptTokens + n}
		}
		return out
	}
	if !stream {
		writeJSON(w, resp("completed", s.text(), s.cfg.Chunks))
		return
	}
	st := startStream(w, r)
	seq := 0
	ev := func(typ string, m map[string]any) bool {
		m["type"] = typ
		m["sequence_number"] = seq
		seq++
		return st.send(typ, m)
	}
	if !ev("response.created", map[string]any{"response": resp("in_progress", "", 0)}) {
		return
	}
	var text strings.Builder
	for i := 0; s.deltas() < 0 || i < s.deltas(); i++ {
		d := s.piece(i)
		text.WriteString(d)
		if !s.pause(r) || !ev("response.output_text.delta", map[string]any{"item_id": "msg_llmtest", "output_index": 0, "content_index": 0, "delta": d, "logprobs": []any{}}) {
			return
		}
	}
	ev("response.completed", map[string]any{"response": resp("completed", text.String(), s.deltas())})
}

func (s *Server) messages(w http.ResponseWriter, r *http.Request, req map[string]any) {
	modelName, _ := req["model"].(string)
	stream, _ := req["stream"].(bool)
	usage := func(out int) map[string]any {
		return map[string]any{"input_tokens": s.cfg.PromptTokens, "output_tokens": out, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
	}
	if !stream {
		writeJSON(w, map[string]any{"id": "msg_llmtest", "type": "message", "role": "assistant", "model": modelName,
			"content":     []any{map[string]any{"type": "text", "text": s.text()}},
			"stop_reason": "end_turn", "stop_sequence": nil, "usage": usage(s.cfg.Chunks)})
		return
	}
	st := startStream(w, r)
	if !st.send("message_start", map[string]any{"type": "message_start", "message": map[string]any{"id": "msg_llmtest", "type": "message", "role": "assistant",
		"model": modelName, "content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": usage(1)}}) {
		return
	}
	if !st.send("content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}}) {
		return
	}
	if !st.send("ping", map[string]any{"type": "ping"}) {
		return
	}
	sent := 0
	for i := 0; s.deltas() < 0 || i < s.deltas(); i++ {
		if !s.pause(r) || !st.send("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
			"delta": map[string]any{"type": "text_delta", "text": s.piece(i)}}) {
			return
		}
		sent++
	}
	if !st.send("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0}) {
		return
	}
	if !st.send("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": "end_turn", "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": sent}}) {
		return
	}
	st.send("message_stop", map[string]any{"type": "message_stop"})
}
