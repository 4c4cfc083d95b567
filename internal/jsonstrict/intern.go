package jsonstrict

// interned holds the object keys and short values that recur in every
// LLM, MCP and Qdrant request, so parsing them allocates nothing.
var interned = func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{
		// OpenAI / Anthropic request and response fields.
		"model", "messages", "role", "content", "type", "text", "name", "description",
		"parameters", "properties", "required", "function", "tools", "tool_choice",
		"tool_calls", "tool_call_id", "arguments", "id", "index", "image_url", "url",
		"detail", "input", "input_schema", "max_tokens", "max_completion_tokens",
		"max_output_tokens", "temperature", "top_p", "n", "stream", "stream_options",
		"include_usage", "stop", "user", "metadata", "system", "user", "assistant",
		"developer", "tool", "string", "object", "array", "number", "integer", "boolean",
		"items", "enum", "strict", "auto", "none", "image", "source", "data", "media_type",
		"tool_use", "tool_result", "tool_use_id", "cache_control", "ephemeral", "choices",
		"delta", "finish_reason", "usage", "prompt_tokens", "completion_tokens",
		"total_tokens", "input_tokens", "output_tokens", "file", "file_id", "input_text",
		"output_text", "input_image", "message", "mcp", "server_label", "server_url",
		// MCP / JSON-RPC.
		"jsonrpc", "2.0", "method", "params", "result", "error", "code", "_meta",
		"tools/call", "tools/list", "inputSchema", "cursor", "nextCursor", "uri",
		// Qdrant.
		"filter", "must", "should", "must_not", "key", "match", "value", "limit",
		"with_payload", "with_vector", "vector", "points", "payload", "collection_name",
	} {
		m[s] = s
	}
	return m
}()
