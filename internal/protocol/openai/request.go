package openai

import (
	"net/http"
	"slices"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
)

// Operations (Call.Operation).
const (
	opChat           = "chat.completions"
	opCompletions    = "completions"
	opEmbeddings     = "embeddings"
	opResponses      = "responses"
	opModelsList     = "models.list"
	opModelsRetrieve = "models.retrieve"
	// opModelUse is the operation of the per-model calls a model list is
	// filtered with.
	opModelUse = "model.use"
)

// Fields Warden reads, per endpoint. A key folding to one of these but not
// equal to it is refused: a case-insensitive upstream would read it.
var (
	chatFields        = []string{"model", "messages", "stream", "stream_options", "n", "max_tokens", "max_completion_tokens", "tools", "functions", "tool_choice", "function_call"}
	completionsFields = []string{"model", "prompt", "stream", "stream_options", "n", "best_of", "max_tokens"}
	embeddingsFields  = []string{"model", "input"}
	responsesFields   = []string{"model", "input", "instructions", "tools", "tool_choice", "stream", "stream_options", "max_output_tokens", "previous_response_id", "conversation", "background", "prompt"}
	messageFields     = []string{"role", "content", "name", "tool_calls", "tool_call_id", "refusal", "function_call"}
	partFields        = []string{"type", "text", "image_url", "input_audio", "file", "refusal"}
	toolFields        = []string{"type", "function", "custom", "name", "server_label", "server_url", "connector_id", "headers", "authorization", "allowed_tools"}
	functionFields    = []string{"name", "arguments", "parameters", "description", "strict"}
)

func checkKeys(obj map[string]any, known []string, where string) error {
	if err := jsonstrict.CheckKeys(obj, known...); err != nil {
		return badParam(CodeAmbiguousField, where, "%s: a field name differs only in case or Unicode folding from a field Warden reads", where)
	}
	return nil
}

// baseResource is the resource every call of the exchange shares.
func (x *exchange) baseResource() map[string]any {
	r := map[string]any{"provider": "openai", "operation": x.op}
	if x.model != "" {
		r["model"] = x.model
	}
	return r
}

// readModel reads the required, exact model string.
func (x *exchange) readModel() error {
	m, ok, err := jsonstrict.GetString(x.tree, "model")
	if err != nil {
		return badParam(CodeInvalidModel, "model", "model must be a string")
	}
	if !ok || m == "" {
		return badParam(CodeModelRequired, "model", "model is required")
	}
	x.model = m
	return nil
}

// readStream reads stream and stream_options.include_usage.
func (x *exchange) readStream(withOptions bool) error {
	s, _, err := jsonstrict.GetBool(x.tree, "stream")
	if err != nil {
		return fieldError(err, "stream")
	}
	x.stream = s
	if !withOptions {
		return nil
	}
	so, ok, err := jsonstrict.GetObject(x.tree, "stream_options")
	if err != nil {
		return fieldError(err, "stream_options")
	}
	if ok {
		if err := checkKeys(so, []string{"include_usage"}, "stream_options"); err != nil {
			return err
		}
		iu, _, err := jsonstrict.GetBool(so, "include_usage")
		if err != nil {
			return fieldError(err, "stream_options.include_usage")
		}
		x.clientUsage = iu
	}
	return nil
}

// readCap reads an output-token cap field and enforces Limits.MaxTokensCap.
func (x *exchange) readCap(field string) error {
	n, err := x.readCapped(field, x.lim.MaxTokensCap, CodeMaxTokensExceeded)
	x.maxTokens = max(x.maxTokens, n)
	return err
}

// readN reads n (or best_of) and enforces Limits.MaxN.
func (x *exchange) readN(field string) error {
	n, err := x.readCapped(field, x.lim.MaxN, CodeNExceeded)
	x.n = max(x.n, n)
	return err
}

// readCapped reads an optional positive integer field and refuses values
// above limit (0 = no limit) with code. An absent field reads as 0.
func (x *exchange) readCapped(field string, limit int64, code string) (int64, error) {
	n, ok, err := jsonstrict.GetInt(x.tree, field)
	if err != nil {
		return 0, fieldError(err, field)
	}
	if !ok {
		return 0, nil
	}
	if n < 1 {
		return 0, badParam(protocol.CodeInvalidRequest, field, "%s must be at least 1", field)
	}
	if limit > 0 && n > limit {
		return 0, badParam(code, field, "%s exceeds the cap of %d configured for this backend", field, limit)
	}
	return n, nil
}

func (x *exchange) parseChat() error {
	if err := checkKeys(x.tree, chatFields, "body"); err != nil {
		return err
	}
	if err := x.readModel(); err != nil {
		return err
	}
	if err := x.readStream(true); err != nil {
		return err
	}
	for _, f := range []string{"max_tokens", "max_completion_tokens"} {
		if err := x.readCap(f); err != nil {
			return err
		}
	}
	if err := x.readN("n"); err != nil {
		return err
	}
	msgs, ok, err := jsonstrict.GetArray(x.tree, "messages")
	if err != nil {
		return fieldError(err, "messages")
	}
	if !ok || len(msgs) == 0 {
		return badParam(protocol.CodeInvalidRequest, "messages", "messages is required")
	}
	x.messageCount = len(msgs)
	for _, m := range msgs {
		mo, ok := m.(map[string]any)
		if !ok {
			return badParam(protocol.CodeInvalidRequest, "messages", "each message must be an object")
		}
		if err := checkKeys(mo, messageFields, "messages"); err != nil {
			return err
		}
		if parts, ok := mo["content"].([]any); ok {
			for _, p := range parts {
				if po, ok := p.(map[string]any); ok {
					if err := checkKeys(po, partFields, "messages.content"); err != nil {
						return err
					}
				}
			}
		}
		x.scan.walk(mo)
	}
	if err := x.readTools(false); err != nil {
		return err
	}
	if fns, ok, err := jsonstrict.GetArray(x.tree, "functions"); err != nil {
		return fieldError(err, "functions")
	} else if ok {
		for _, f := range fns {
			fo, ok := f.(map[string]any)
			if !ok {
				return badParam(protocol.CodeInvalidRequest, "functions", "each function must be an object")
			}
			if err := x.addToolName(fo, "functions"); err != nil {
				return err
			}
			x.scan.walk(fo)
		}
	}
	x.finishCalls()
	return nil
}

func (x *exchange) parseCompletions() error {
	if err := checkKeys(x.tree, completionsFields, "body"); err != nil {
		return err
	}
	if err := x.readModel(); err != nil {
		return err
	}
	if err := x.readStream(true); err != nil {
		return err
	}
	if err := x.readCap("max_tokens"); err != nil {
		return err
	}
	for _, f := range []string{"n", "best_of"} {
		if err := x.readN(f); err != nil {
			return err
		}
	}
	prompt, ok := x.tree["prompt"]
	if !ok || prompt == nil {
		return badParam(protocol.CodeInvalidRequest, "prompt", "prompt is required")
	}
	x.scan.walkInput(prompt)
	x.messageCount = 1
	x.finishCalls()
	return nil
}

func (x *exchange) parseEmbeddings() error {
	if err := checkKeys(x.tree, embeddingsFields, "body"); err != nil {
		return err
	}
	if err := x.readModel(); err != nil {
		return err
	}
	in, ok := x.tree["input"]
	if !ok || in == nil {
		return badParam(protocol.CodeInvalidRequest, "input", "input is required")
	}
	switch v := in.(type) {
	case string:
		x.messageCount = 1
	case []any:
		x.messageCount = len(v)
		if len(v) > 0 {
			if _, isNum := v[0].(jsonstrict.Number); isNum {
				x.messageCount = 1
			}
		}
	default:
		return badParam(protocol.CodeInvalidRequest, "input", "input must be a string or an array")
	}
	x.scan.walkInput(in)
	x.finishCalls()
	return nil
}

// externalToolTypes are Responses tool types that let the model act outside
// Warden: remote MCP servers and connectors, shells, computer use.
var externalToolTypes = []string{"mcp", "shell", "local_shell", "computer", "computer_use", "computer_use_preview"}

// hostedToolTypes run inside OpenAI and reach nothing of the caller's; they
// are listed in the resource (tool_types) for policy to decide.
var hostedToolTypes = []string{"function", "custom", "file_search", "web_search", "web_search_preview",
	"web_search_2025_08_26", "web_search_preview_2025_03_11", "code_interpreter", "image_generation", "apply_patch", "tool_search"}

func (x *exchange) parseResponses() error {
	if err := checkKeys(x.tree, responsesFields, "body"); err != nil {
		return err
	}
	if err := x.readModel(); err != nil {
		return err
	}
	if err := x.readStream(false); err != nil {
		return err
	}
	if err := x.readCap("max_output_tokens"); err != nil {
		return err
	}
	if bg, _, err := jsonstrict.GetBool(x.tree, "background"); err != nil {
		return fieldError(err, "background")
	} else if bg {
		// A background response is fetched later from /v1/responses/{id},
		// which Warden cannot meter or bind to the caller.
		return badParam(protocol.CodeInvalidRequest, "background", "background responses are not supported through Warden")
	}
	if _, ok := x.tree["prompt"]; ok {
		// A stored prompt can bring its own model, tools and MCP servers
		// from OpenAI's side, where Warden cannot see or authorize them.
		return badParam(protocol.CodeInvalidRequest, "prompt", "stored prompts are not supported through Warden")
	}
	if s, ok, err := jsonstrict.GetString(x.tree, "previous_response_id"); err != nil {
		return fieldError(err, "previous_response_id")
	} else if ok {
		x.previousResponse = s
	}
	in, ok := x.tree["input"]
	switch v := in.(type) {
	case nil:
		if ok {
			return badParam(protocol.CodeInvalidRequest, "input", "input must be a string or an array")
		}
	case string:
		x.messageCount = 1
	case []any:
		x.messageCount = len(v)
	default:
		return badParam(protocol.CodeInvalidRequest, "input", "input must be a string or an array")
	}
	x.scan.walkInput(in)
	if ins, _, err := jsonstrict.GetString(x.tree, "instructions"); err != nil {
		return fieldError(err, "instructions")
	} else {
		x.scan.bytes += int64(len(ins))
	}
	if err := x.readTools(true); err != nil {
		return err
	}
	x.finishCalls()
	return nil
}

// readTools reads the tools array. Chat tools nest the function
// ({"type":"function","function":{"name"}}); Responses tools are flat and
// include external types.
func (x *exchange) readTools(responses bool) error {
	tools, ok, err := jsonstrict.GetArray(x.tree, "tools")
	if err != nil {
		return fieldError(err, "tools")
	}
	if !ok {
		return nil
	}
	for _, t := range tools {
		to, ok := t.(map[string]any)
		if !ok {
			return badParam(protocol.CodeInvalidRequest, "tools", "each tool must be an object")
		}
		if err := checkKeys(to, toolFields, "tools"); err != nil {
			return err
		}
		typ, _, err := jsonstrict.GetString(to, "type")
		if err != nil {
			return fieldError(err, "tools.type")
		}
		if typ == "" {
			return badParam(protocol.CodeInvalidRequest, "tools", "each tool needs a type")
		}
		if !slices.Contains(x.toolTypes, typ) {
			x.toolTypes = append(x.toolTypes, typ)
		}
		x.scan.walk(to)
		switch {
		case !responses && (typ == "function" || typ == "custom"):
			inner, ok, err := jsonstrict.GetObject(to, typ)
			if err != nil || !ok {
				return badParam(protocol.CodeInvalidRequest, "tools", "a %s tool needs a %q object", typ, typ)
			}
			if err := x.addToolName(inner, "tools."+typ); err != nil {
				return err
			}
		case !responses:
			return badParam(CodeUnsupportedTool, "tools", "tool type is not supported by chat completions through Warden")
		case typ == "function" || typ == "custom":
			if err := x.addToolName(to, "tools"); err != nil {
				return err
			}
		case slices.Contains(hostedToolTypes, typ):
		default:
			// mcp, shell, computer use — and any type this package does
			// not know yet: fail closed by treating it as external.
			ext := map[string]any{"type": typ}
			for _, k := range []string{"server_label", "server_url", "connector_id"} {
				if s, ok, err := jsonstrict.GetString(to, k); err != nil {
					return fieldError(err, "tools."+k)
				} else if ok {
					ext[k] = s
				}
			}
			x.external = append(x.external, ext)
		}
	}
	return nil
}

func (x *exchange) addToolName(obj map[string]any, where string) error {
	if err := checkKeys(obj, functionFields, where); err != nil {
		return err
	}
	name, ok, err := jsonstrict.GetString(obj, "name")
	if err != nil || !ok || name == "" {
		return badParam(protocol.CodeInvalidRequest, where, "each tool needs a name")
	}
	x.tools = append(x.tools, name)
	return nil
}

// finishCalls builds the calls once the request is read.
func (x *exchange) finishCalls() {
	x.estPrompt = x.scan.estimate()
	r := x.baseResource()
	if x.n > 0 {
		r["n"] = x.n
	}
	if x.previousResponse != "" {
		r["previous_response_id"] = x.previousResponse
	}
	x.calls = LLMCalls(r, x.op, x.op+".tools", LLMFields{
		Stream: x.stream, MaxTokens: x.maxTokens, Tools: x.tools, ToolTypes: x.toolTypes,
		Images: x.scan.images, Files: x.scan.files, Audio: x.scan.audio,
		Messages: x.messageCount, EstimatedPromptTokens: x.estPrompt, External: x.external,
	}, x.baseResource)
}

// LLMFields are the request facts both LLM protocols (openai, anthropic)
// put in input.resource, and the external tool servers a request names.
type LLMFields struct {
	Stream                bool
	MaxTokens             int64
	Tools, ToolTypes      []string
	Images, Files, Audio  bool
	Messages              int
	EstimatedPromptTokens int64
	External              []map[string]any
}

// LLMCalls completes r (the protocol's base resource plus its own fields)
// with f and returns the request's calls: invoke op on r, and, when the
// request names external tool servers, connect_external extOp on a fresh
// base resource listing them.
func LLMCalls(r map[string]any, op, extOp string, f LLMFields, base func() map[string]any) []protocol.Call {
	r["stream"] = f.Stream
	if f.MaxTokens > 0 {
		r["max_tokens"] = f.MaxTokens
	}
	tools := f.Tools
	if tools == nil {
		tools = []string{}
	}
	r["tools"] = tools
	if f.ToolTypes != nil {
		r["tool_types"] = f.ToolTypes
	}
	r["has_images"] = f.Images
	r["has_files"] = f.Files
	r["has_audio"] = f.Audio
	r["message_count"] = f.Messages
	r["estimated_prompt_tokens"] = f.EstimatedPromptTokens
	calls := []protocol.Call{{Action: protocol.ActionInvoke, Operation: op, Resource: r}}
	if len(f.External) > 0 {
		servers := make([]any, len(f.External))
		for i, e := range f.External {
			servers[i] = e
		}
		er := base()
		er["servers"] = servers
		calls = append(calls, protocol.Call{Action: ActionConnectExternal, Operation: extOp, Resource: er})
	}
	return calls
}

// Scan accumulates the cheap facts about a prompt policy sees: text size
// and whether images, files or audio are attached. Shared with the
// Anthropic package.
//
// The token estimate is deliberately crude — bytes of text / 4, rounded up
// (about right for English with OpenAI's and Anthropic's tokenizers; low for
// CJK, high for code) — because it only orders requests for policy and
// budgets before the upstream reports exact usage. Attachments are not
// counted; has_images/has_files flag them instead.
type Scan struct {
	bytes  int64
	tokens int64
	images bool
	files  bool
	audio  bool
}

// Walk adds every string under v except structural fields and attachment
// payloads.
func (s *Scan) Walk(v any) { s.walk(v) }

// Estimate is the token estimate: ceil(text bytes / 4) plus token-array
// lengths.
func (s *Scan) Estimate() int64 { return s.estimate() }

// Images reports whether an image was attached (has_images).
func (s *Scan) Images() bool { return s.images }

// Files reports whether a file or document was attached (has_files).
func (s *Scan) Files() bool { return s.files }

// Audio reports whether audio input was attached (has_audio).
func (s *Scan) Audio() bool { return s.audio }

func (s *Scan) estimate() int64 { return (s.bytes+3)/4 + s.tokens }

// skipKeys are structural fields whose strings are not prompt text.
var skipKeys = []string{"type", "role", "id", "tool_call_id", "tool_use_id", "cache_control", "signature", "detail", "format", "media_type", "strict"}

func (s *Scan) walk(v any) {
	switch t := v.(type) {
	case string:
		s.bytes += int64(len(t))
	case []any:
		for _, e := range t {
			s.walk(e)
		}
	case map[string]any:
		if typ, ok := t["type"].(string); ok {
			switch typ {
			case "image", "image_url", "input_image":
				s.images = true
				return
			case "file", "input_file", "document":
				s.files = true
				return
			case "input_audio", "audio":
				s.audio = true
				return
			}
		}
		for k, e := range t {
			if slices.Contains(skipKeys, k) {
				continue
			}
			s.walk(e)
		}
	}
}

// walkInput handles prompt/input fields that may be token arrays.
func (s *Scan) walkInput(v any) {
	switch t := v.(type) {
	case []any:
		for _, e := range t {
			switch e := e.(type) {
			case jsonstrict.Number:
				s.tokens++
			case []any:
				if len(e) > 0 {
					if _, ok := e[0].(jsonstrict.Number); ok {
						s.tokens += int64(len(e))
						continue
					}
				}
				s.walk(e)
			default:
				s.walk(e)
			}
		}
	default:
		s.walk(v)
	}
}

var _ = http.StatusOK
