// Package openai is the "openai" backend kind: the OpenAI HTTP API (and the
// many servers compatible with it: vLLM, Ollama, LiteLLM, Azure-style
// gateways speaking /v1) parsed strictly enough to authorize it.
//
// A request is parsed with internal/jsonstrict, classified into a
// protocol.Call whose resource names the model exactly as sent, the tools
// offered, the output caps and a cheap prompt-size estimate; tools that let
// the model reach outside Warden (Responses "mcp" and connector tools,
// shell, computer use) raise a second Call with action connect_external.
// What is forwarded is the canonical re-encoding of what was parsed, with
// stream_options.include_usage forced on so every stream can be metered.
// Responses are metered as they stream and cut off cleanly, in OpenAI's
// own error format, when a budget or stream cap runs out; model lists are
// filtered to the models the caller may use.
//
// With guardrails on, the gateway lends a protocol.Guard in
// protocol.Request.Guard. Every completion's output is then scanned for
// the audit record ("response_guard": rule ids and counts, never text); a
// stream is scanned on the side, its bytes passed on at once and
// unchanged, and scanned on every way it can end (a client gone, a broken
// upstream, text after finish_reason or [DONE]); an audit that cannot vouch
// for all of it says "scanned": "partial". Two policy obligations use the
// Guard (see guard.go): redact replaces secrets and personal data in the
// generated text, streamed or not — content, refusals, reasoning, audio
// transcripts and, above all, tool call arguments; each choice's text and
// each tool call's arguments pass through their own look-behind window and
// the held text goes out in a chunk of its own just before the finishing
// chunk; a delta shape it cannot place cuts the stream (fail closed) — and
// redact_prompt replaces them in every string of the request body before
// forwarding, refusing what it cannot rewrite (a finding in an object
// key). Without a Guard both are refused, as is redact on the Responses
// API, whose output is scanned but not yet redacted, and redact on a chat
// request for audio output.
//
// API reference: https://platform.openai.com/docs/api-reference
package openai

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
)

// ActionConnectExternal is protocol.ActionConnectExternal, kept for callers of this package.
const ActionConnectExternal = protocol.ActionConnectExternal

// Reason codes this package adds to protocol.Code*. Stable: clients match
// on them.
const (
	CodeModelRequired      = "model_required"
	CodeInvalidModel       = "invalid_model"
	CodeAmbiguousJSON      = "ambiguous_json"
	CodeAmbiguousField     = "ambiguous_field"
	CodeMaxTokensExceeded  = "max_tokens_exceeded"
	CodeNExceeded          = "n_exceeded"
	CodeEndpointForbidden  = "endpoint_forbidden"
	CodeModelNotFound      = "model_not_found"
	CodeStreamLimit        = "stream_limit_exceeded"
	CodeUpstreamMalformed  = "upstream_malformed"
	CodeUnsupportedTool    = "unsupported_tool_type"
	CodeObligationRejected = "unsupported_obligation"
)

// Protocol implements protocol.Protocol for OpenAI backends. It is safe
// for concurrent use.
type Protocol struct {
	cfg Config
	log *slog.Logger
}

var _ protocol.Protocol = (*Protocol)(nil)

// Config configures a Protocol.
type Config struct {
	// Backends holds per-backend limits by backend name; a backend not
	// listed gets Default.
	Backends map[string]Limits
	// Default applies to backends not in Backends. Zero fields take the
	// documented defaults.
	Default Limits
	// MaxDepth bounds request JSON nesting. Default 64.
	MaxDepth int
	// MaxBodyBytes bounds the request body. Default 4 MiB.
	MaxBodyBytes int64
	// Log receives debug records (never bodies). Nil discards.
	Log *slog.Logger
	// AfterFunc schedules stream duration caps; nil means time.AfterFunc.
	AfterFunc func(time.Duration, func()) func() bool
}

// New returns a Protocol.
func New(cfg Config) *Protocol {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Default = cfg.Default.WithDefaults()
	backends := make(map[string]Limits, len(cfg.Backends))
	for k, v := range cfg.Backends {
		backends[k] = v.WithDefaults()
	}
	cfg.Backends = backends
	return &Protocol{cfg: cfg, log: log}
}

// FromConfig builds the Protocol for every backend of kind "openai" in c,
// reading each backend's options with ParseLimits.
func FromConfig(c *config.Config, log *slog.Logger) (*Protocol, error) {
	return fromConfig(c, "openai", log)
}

func fromConfig(c *config.Config, kind string, log *slog.Logger) (*Protocol, error) {
	cfg := Config{Backends: map[string]Limits{}, MaxDepth: c.Limits.MaxJSONDepth, MaxBodyBytes: c.Limits.MaxBodyBytes, Log: log}
	var errs []error
	for _, b := range c.Backends {
		if b.Kind != kind {
			continue
		}
		l, err := ParseLimits(b.Options)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: backend %q: %w", kind, b.Name, err))
			continue
		}
		cfg.Backends[b.Name] = l
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return New(cfg), nil
}

// Name implements protocol.Protocol.
func (p *Protocol) Name() string { return "openai" }

func (p *Protocol) limits(backend string) Limits {
	if l, ok := p.cfg.Backends[backend]; ok {
		return l
	}
	return p.cfg.Default
}

// forbiddenPrefixes are OpenAI endpoints that carry models or prompts in
// places this package does not model (batch files, assistants, realtime
// WebSockets, Azure deployment paths). They are refused with 403 rather
// than forwarded unchecked.
var forbiddenPrefixes = []string{
	"/v1/batches", "/v1/files", "/v1/uploads", "/v1/fine_tuning", "/v1/assistants", "/v1/threads",
	"/v1/realtime", "/v1/audio", "/v1/images", "/v1/moderations", "/v1/vector_stores",
	"/v1/responses/", "/v1/conversations", "/v1/evals", "/v1/containers", "/v1/videos",
	"/v1/chat/completions/", "/openai/deployments",
}

// Parse implements protocol.Protocol. It classifies req.HTTP.URL.Path as
// the upstream will see it (after any route prefix was stripped).
func (p *Protocol) Parse(_ context.Context, req *protocol.Request) (protocol.Exchange, error) {
	r := req.HTTP
	path := r.URL.Path
	lim := p.limits(req.Backend)
	x := &exchange{p: p, lim: lim, guard: req.Guard}
	var op string
	switch {
	case path == "/v1/chat/completions":
		op = opChat
	case path == "/v1/completions":
		op = opCompletions
	case path == "/v1/embeddings":
		op = opEmbeddings
	case path == "/v1/responses":
		op = opResponses
	case path == "/v1/models":
		op = opModelsList
	case strings.HasPrefix(path, "/v1/models/") && len(path) > len("/v1/models/"):
		op = opModelsRetrieve
	default:
		for _, pre := range forbiddenPrefixes {
			if path == strings.TrimSuffix(pre, "/") || strings.HasPrefix(path, pre) {
				return nil, protocol.Errorf(http.StatusForbidden, CodeEndpointForbidden, "this OpenAI endpoint is not allowed through Warden")
			}
		}
		return nil, protocol.Errorf(http.StatusNotFound, protocol.CodeUnknownRoute, "unknown OpenAI endpoint")
	}
	x.op = op
	if op == opModelsList || op == opModelsRetrieve {
		if r.Method != http.MethodGet {
			return nil, methodNotAllowed(http.MethodGet)
		}
		x.model = strings.TrimPrefix(path, "/v1/models/")
		if op == opModelsList {
			x.model = ""
		}
		x.calls = []protocol.Call{{Action: protocol.ActionRead, Operation: op, Resource: x.baseResource()}}
		return x, nil
	}
	if r.Method != http.MethodPost {
		return nil, methodNotAllowed(http.MethodPost)
	}
	obj, err := ParseBody(r, req.Body, jsonstrict.Options{MaxDepth: p.cfg.MaxDepth, MaxBytes: p.cfg.MaxBodyBytes})
	if err != nil {
		return nil, err
	}
	x.tree, x.bodyLen = obj, len(req.Body)
	switch op {
	case opChat:
		err = x.parseChat()
	case opCompletions:
		err = x.parseCompletions()
	case opEmbeddings:
		err = x.parseEmbeddings()
	case opResponses:
		err = x.parseResponses()
	}
	if err != nil {
		return nil, err
	}
	return x, nil
}

func methodNotAllowed(allow string) *protocol.Error {
	return &protocol.Error{Status: http.StatusMethodNotAllowed, Code: protocol.CodeMethodNotAllowed,
		Message: "method not allowed; use " + allow, Err: &paramError{param: ""}}
}

// ParseBody checks the media type and strictly parses a JSON object body,
// mapping failures to client errors. The Anthropic package shares it.
func ParseBody(r *http.Request, body []byte, opt jsonstrict.Options) (map[string]any, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, protocol.Errorf(http.StatusUnsupportedMediaType, protocol.CodeUnsupportedMedia, "Content-Type must be application/json")
	}
	if len(body) == 0 {
		return nil, protocol.Errorf(http.StatusBadRequest, protocol.CodeInvalidJSON, "request body is required")
	}
	v, err := jsonstrict.Parse(body, opt)
	if err != nil {
		return nil, JSONError(err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, protocol.Errorf(http.StatusBadRequest, protocol.CodeInvalidRequest, "request body must be a JSON object")
	}
	return obj, nil
}

// JSONError maps a jsonstrict parse error to a client error: ambiguous
// documents (duplicate or case-variant keys) get their own code.
func JSONError(err error) *protocol.Error {
	var je *jsonstrict.Error
	if !errors.As(err, &je) {
		return &protocol.Error{Status: http.StatusBadRequest, Code: protocol.CodeInvalidJSON, Message: "invalid JSON", Err: err}
	}
	code, status := protocol.CodeInvalidJSON, http.StatusBadRequest
	switch je.Msg {
	case jsonstrict.MsgDuplicateKey, jsonstrict.MsgFoldedKey:
		code = CodeAmbiguousJSON
	case jsonstrict.MsgTooLarge:
		code, status = protocol.CodeBodyTooLarge, http.StatusRequestEntityTooLarge
	}
	return &protocol.Error{Status: status, Code: code, Message: fmt.Sprintf("invalid JSON body: %s at offset %d", je.Msg, je.Offset), Err: err}
}

// paramError carries the request field an error is about, for the OpenAI
// error object's "param". Field names are the package's own, never input.
type paramError struct{ param string }

func (e *paramError) Error() string { return "param " + e.param }

// badParam is a 400 about one request field.
func badParam(code, param, format string, args ...any) *protocol.Error {
	return &protocol.Error{Status: http.StatusBadRequest, Code: code, Message: fmt.Sprintf(format, args...), Err: &paramError{param: param}}
}

// fieldError maps a jsonstrict getter error to a 400 naming the field.
func fieldError(err error, param string) *protocol.Error {
	var te *jsonstrict.TypeError
	if errors.As(err, &te) {
		return badParam(protocol.CodeInvalidRequest, param, "%s must be %s", param, te.Want)
	}
	return badParam(protocol.CodeInvalidRequest, param, "invalid %s", param)
}

// WriteError implements protocol.Protocol with OpenAI's error object:
// {"error":{"message","type","param","code"}}.
func (p *Protocol) WriteError(w http.ResponseWriter, _ *http.Request, e *protocol.Error) {
	WriteError(w, e)
}

// WriteError writes e as an OpenAI error object. Only e's Status, Code,
// Message and the field name it concerns are sent.
func WriteError(w http.ResponseWriter, e *protocol.Error) {
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
	var param any
	var pe *paramError
	if errors.As(e.Err, &pe) && pe.param != "" {
		param = pe.param
	}
	return map[string]any{"error": map[string]any{
		"message": e.Message,
		"type":    errorType(e.Status, e.Code),
		"param":   param,
		"code":    e.Code,
	}}
}

// errorType maps a status to the OpenAI error "type" clients switch on.
func errorType(status int, code string) string {
	switch {
	case code == protocol.CodeBudgetExhausted:
		return "insufficient_quota"
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusNotFound:
		return "invalid_request_error"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	default:
		return "invalid_request_error"
	}
}
