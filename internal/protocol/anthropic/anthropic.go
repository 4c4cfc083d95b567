// Package anthropic is the "anthropic" backend kind: the Anthropic Messages
// API (https://docs.claude.com/en/api/messages) parsed strictly enough to
// authorize it.
//
// It shares its limits, metering and model-list filtering with package
// openai (the two APIs differ in shape, not in what Warden must do): the
// model is read exactly as sent, max_tokens is capped, tools are listed,
// and mcp_servers — which make Anthropic call MCP servers directly,
// bypassing Warden's MCP gateway — raise a connect_external Call the
// default policy denies. Streams are metered from message_start (input)
// and the last message_delta (output), and cut off with an Anthropic
// "error" event when a budget or stream cap runs out.
//
// With guardrails on (protocol.Request.Guard) the output is scanned for the
// audit record ("response_guard": rule ids and counts) without holding
// anything back, on every way a stream can end, and the guard obligations
// of package openai apply. redact_prompt redacts every string of the
// request body before forwarding; signed thinking blocks are left as they
// are, and a finding in one (or in an object key) refuses the request.
// redact redacts every content block (text and citations, tool_use input,
// server tool results) non-streamed, and in streams each block's
// text_delta and input_json_delta through its own look-behind window, the
// held text sent as one more delta just before content_block_stop;
// citations, tool blocks that start with their input and a message_start
// that carries content are redacted whole. Thinking is signed and cannot be
// redacted: a finding in it withholds the response, or cuts the stream with
// a guard_blocked error event before any of it goes out. Under redact a
// delta or event carrying text the filter does not know, or a block index
// above 64, cuts the stream as malformed (fail closed).
package anthropic

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
	"github.com/wardenhq/warden/internal/protocol/openai"
)

// Operations (Call.Operation).
const (
	opMessages       = "messages"
	opCountTokens    = "messages.count_tokens"
	opModelsList     = "models.list"
	opModelsRetrieve = "models.retrieve"
)

// Config configures a Protocol. Backend options are those of package
// openai (max_tokens_cap, max_stream_bytes, max_stream_duration, ...).
type Config struct {
	// Backends holds per-backend limits by backend name; others get Default.
	Backends map[string]openai.Limits
	Default  openai.Limits
	// MaxDepth bounds request JSON nesting. Default 64.
	MaxDepth int
	// MaxBodyBytes bounds the request body. Default 4 MiB.
	MaxBodyBytes int64
	// Log receives debug records (never bodies). Nil discards.
	Log *slog.Logger
	// AfterFunc schedules stream duration caps; nil means time.AfterFunc.
	AfterFunc func(time.Duration, func()) func() bool
}

// Protocol implements protocol.Protocol for Anthropic backends. It is safe
// for concurrent use.
type Protocol struct {
	cfg Config
	log *slog.Logger
}

var _ protocol.Protocol = (*Protocol)(nil)

// New returns a Protocol.
func New(cfg Config) *Protocol {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Default = cfg.Default.WithDefaults()
	backends := make(map[string]openai.Limits, len(cfg.Backends))
	for k, v := range cfg.Backends {
		backends[k] = v.WithDefaults()
	}
	cfg.Backends = backends
	return &Protocol{cfg: cfg, log: log}
}

// FromConfig builds the Protocol for every backend of kind "anthropic".
func FromConfig(c *config.Config, log *slog.Logger) (*Protocol, error) {
	cfg := Config{Backends: map[string]openai.Limits{}, MaxDepth: c.Limits.MaxJSONDepth, MaxBodyBytes: c.Limits.MaxBodyBytes, Log: log}
	for _, b := range c.Backends {
		if b.Kind != "anthropic" {
			continue
		}
		l, err := openai.ParseLimits(b.Options)
		if err != nil {
			return nil, fmt.Errorf("anthropic: backend %q: %w", b.Name, err)
		}
		cfg.Backends[b.Name] = l
	}
	return New(cfg), nil
}

// Name implements protocol.Protocol.
func (p *Protocol) Name() string { return "anthropic" }

func (p *Protocol) limits(backend string) openai.Limits {
	if l, ok := p.cfg.Backends[backend]; ok {
		return l
	}
	return p.cfg.Default
}

// forbiddenPrefixes carry prompts or models where this package does not
// look (batches, files, the legacy completion API, admin APIs).
var forbiddenPrefixes = []string{"/v1/messages/batches", "/v1/files", "/v1/complete", "/v1/skills", "/v1/organizations", "/v1/agents", "/v1/sessions"}

// Parse implements protocol.Protocol. It classifies req.HTTP.URL.Path as
// the upstream will see it (after any route prefix was stripped).
func (p *Protocol) Parse(_ context.Context, req *protocol.Request) (protocol.Exchange, error) {
	r := req.HTTP
	path := r.URL.Path
	x := &exchange{p: p, lim: p.limits(req.Backend), guard: req.Guard}
	switch {
	case path == "/v1/messages":
		x.op = opMessages
	case path == "/v1/messages/count_tokens":
		x.op = opCountTokens
	case path == "/v1/models":
		x.op = opModelsList
	case strings.HasPrefix(path, "/v1/models/") && len(path) > len("/v1/models/"):
		x.op = opModelsRetrieve
	default:
		for _, pre := range forbiddenPrefixes {
			if path == pre || strings.HasPrefix(path, pre+"/") {
				return nil, protocol.Errorf(http.StatusForbidden, openai.CodeEndpointForbidden, "this Anthropic endpoint is not allowed through Warden")
			}
		}
		return nil, protocol.Errorf(http.StatusNotFound, protocol.CodeUnknownRoute, "unknown Anthropic endpoint")
	}
	if x.op == opModelsList || x.op == opModelsRetrieve {
		if r.Method != http.MethodGet {
			return nil, protocol.Errorf(http.StatusMethodNotAllowed, protocol.CodeMethodNotAllowed, "method not allowed; use GET")
		}
		if x.op == opModelsRetrieve {
			x.model = strings.TrimPrefix(path, "/v1/models/")
		}
		x.calls = []protocol.Call{{Action: protocol.ActionRead, Operation: x.op, Resource: x.baseResource()}}
		return x, nil
	}
	if r.Method != http.MethodPost {
		return nil, protocol.Errorf(http.StatusMethodNotAllowed, protocol.CodeMethodNotAllowed, "method not allowed; use POST")
	}
	obj, err := openai.ParseBody(r, req.Body, jsonstrict.Options{MaxDepth: p.cfg.MaxDepth, MaxBytes: p.cfg.MaxBodyBytes})
	if err != nil {
		return nil, err
	}
	x.tree, x.bodyLen = obj, len(req.Body)
	if err := x.parseMessages(r); err != nil {
		return nil, err
	}
	return x, nil
}

var (
	messagesFields = []string{"model", "messages", "max_tokens", "stream", "system", "tools", "tool_choice", "mcp_servers", "thinking"}
	messageFields  = []string{"role", "content"}
	blockFields    = []string{"type", "text", "source", "content", "input", "name", "id", "tool_use_id"}
	toolFields     = []string{"name", "type", "input_schema", "description", "mcp_server_name"}
	serverFields   = []string{"type", "url", "name", "authorization_token", "tool_configuration"}
)

func bad(code, format string, args ...any) *protocol.Error {
	return protocol.Errorf(http.StatusBadRequest, code, format, args...)
}

func checkKeys(obj map[string]any, known []string, where string) error {
	if err := jsonstrict.CheckKeys(obj, known...); err != nil {
		return bad(openai.CodeAmbiguousField, "%s: a field name differs only in case or Unicode folding from a field Warden reads", where)
	}
	return nil
}

func typeErr(err error, field string) *protocol.Error {
	if te, ok := err.(*jsonstrict.TypeError); ok {
		return bad(protocol.CodeInvalidRequest, "%s: must be %s", field, te.Want)
	}
	return bad(protocol.CodeInvalidRequest, "%s: invalid", field)
}

func (x *exchange) parseMessages(r *http.Request) error {
	t := x.tree
	if err := checkKeys(t, messagesFields, "body"); err != nil {
		return err
	}
	m, ok, err := jsonstrict.GetString(t, "model")
	if err != nil {
		return bad(openai.CodeInvalidModel, "model: must be a string")
	}
	if !ok || m == "" {
		return bad(openai.CodeModelRequired, "model: field required")
	}
	x.model = m
	if x.stream, _, err = jsonstrict.GetBool(t, "stream"); err != nil {
		return typeErr(err, "stream")
	}
	mt, ok, err := jsonstrict.GetInt(t, "max_tokens")
	if err != nil {
		return typeErr(err, "max_tokens")
	}
	switch {
	case !ok && x.op == opMessages:
		return bad(protocol.CodeInvalidRequest, "max_tokens: field required")
	case ok && mt < 1:
		return bad(protocol.CodeInvalidRequest, "max_tokens: must be at least 1")
	case ok && x.lim.MaxTokensCap > 0 && mt > x.lim.MaxTokensCap:
		return bad(openai.CodeMaxTokensExceeded, "max_tokens: exceeds the cap of %d configured for this backend", x.lim.MaxTokensCap)
	}
	x.maxTokens = mt
	msgs, ok, err := jsonstrict.GetArray(t, "messages")
	if err != nil {
		return typeErr(err, "messages")
	}
	if !ok || len(msgs) == 0 {
		return bad(protocol.CodeInvalidRequest, "messages: field required")
	}
	x.messageCount = len(msgs)
	for _, mv := range msgs {
		mo, ok := mv.(map[string]any)
		if !ok {
			return bad(protocol.CodeInvalidRequest, "messages: each message must be an object")
		}
		if err := checkKeys(mo, messageFields, "messages"); err != nil {
			return err
		}
		if blocks, ok := mo["content"].([]any); ok {
			for _, b := range blocks {
				if bo, ok := b.(map[string]any); ok {
					if err := checkKeys(bo, blockFields, "messages.content"); err != nil {
						return err
					}
				}
			}
		}
		x.scan.Walk(mo)
	}
	switch s := t["system"].(type) {
	case nil, string, []any:
		x.scan.Walk(s)
	default:
		return bad(protocol.CodeInvalidRequest, "system: must be a string or an array of blocks")
	}
	if err := x.readTools(); err != nil {
		return err
	}
	if err := x.readMCPServers(); err != nil {
		return err
	}
	for _, v := range r.Header.Values("Anthropic-Beta") {
		for _, b := range strings.Split(v, ",") {
			if b = strings.TrimSpace(b); b != "" {
				x.betas = append(x.betas, b)
			}
		}
	}
	x.finishCalls()
	return nil
}

func (x *exchange) readTools() error {
	tools, ok, err := jsonstrict.GetArray(x.tree, "tools")
	if err != nil {
		return typeErr(err, "tools")
	}
	if !ok {
		return nil
	}
	for _, tv := range tools {
		to, ok := tv.(map[string]any)
		if !ok {
			return bad(protocol.CodeInvalidRequest, "tools: each tool must be an object")
		}
		if err := checkKeys(to, toolFields, "tools"); err != nil {
			return err
		}
		typ, _, err := jsonstrict.GetString(to, "type")
		if err != nil {
			return typeErr(err, "tools.type")
		}
		if typ == "" {
			typ = "custom"
		}
		if !slices.Contains(x.toolTypes, typ) {
			x.toolTypes = append(x.toolTypes, typ)
		}
		if typ == "mcp_toolset" {
			name, _, err := jsonstrict.GetString(to, "mcp_server_name")
			if err != nil {
				return typeErr(err, "tools.mcp_server_name")
			}
			x.external = append(x.external, map[string]any{"type": typ, "name": name})
			continue
		}
		name, ok, err := jsonstrict.GetString(to, "name")
		if err != nil || !ok || name == "" {
			return bad(protocol.CodeInvalidRequest, "tools: each tool needs a name")
		}
		x.tools = append(x.tools, name)
		x.scan.Walk(to)
	}
	return nil
}

// readMCPServers reads the MCP connector's mcp_servers: Anthropic would
// call these servers directly, outside Warden.
func (x *exchange) readMCPServers() error {
	servers, ok, err := jsonstrict.GetArray(x.tree, "mcp_servers")
	if err != nil {
		return typeErr(err, "mcp_servers")
	}
	if !ok {
		return nil
	}
	for _, sv := range servers {
		so, ok := sv.(map[string]any)
		if !ok {
			return bad(protocol.CodeInvalidRequest, "mcp_servers: each server must be an object")
		}
		if err := checkKeys(so, serverFields, "mcp_servers"); err != nil {
			return err
		}
		ext := map[string]any{"type": "mcp_server"}
		for _, k := range []string{"name", "url"} {
			s, _, err := jsonstrict.GetString(so, k)
			if err != nil {
				return typeErr(err, "mcp_servers."+k)
			}
			ext[k] = s
		}
		x.external = append(x.external, ext)
	}
	return nil
}

func (x *exchange) baseResource() map[string]any {
	r := map[string]any{"provider": "anthropic", "operation": x.op}
	if x.model != "" {
		r["model"] = x.model
	}
	return r
}

func (x *exchange) finishCalls() {
	x.estPrompt = x.scan.Estimate()
	r := x.baseResource()
	if x.betas != nil {
		r["betas"] = x.betas
	}
	x.calls = openai.LLMCalls(r, x.op, x.op+".mcp_servers", openai.LLMFields{
		Stream: x.stream, MaxTokens: x.maxTokens, Tools: x.tools, ToolTypes: x.toolTypes,
		Images: x.scan.Images(), Files: x.scan.Files(), Audio: x.scan.Audio(),
		Messages: x.messageCount, EstimatedPromptTokens: x.estPrompt, External: x.external,
	}, x.baseResource)
}

// WriteError implements protocol.Protocol with Anthropic's error shape,
// {"type":"error","error":{"type","message"}}, plus the stable Warden code
// in error.code (clients ignore unknown fields).
func (p *Protocol) WriteError(w http.ResponseWriter, _ *http.Request, e *protocol.Error) {
	b, _ := jsonstrict.Marshal(errorObject(e))
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	w.WriteHeader(e.Status)
	_, _ = w.Write(append(b, '\n'))
}

func errorObject(e *protocol.Error) map[string]any {
	return map[string]any{"type": "error", "error": map[string]any{"type": errorType(e.Status), "message": e.Message, "code": e.Code}}
}

// errorType maps a status to Anthropic's error types
// (https://docs.claude.com/en/api/errors).
func errorType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}
