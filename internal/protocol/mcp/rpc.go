package mcp

import (
	"net/http"
	"runtime"
	"sync"
	"weak"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
)

// JSON-RPC error codes. -32700..-32600 are JSON-RPC 2.0's; -32020 and
// -32022 are MCP 2026-07-28's; codeForbidden is Warden's, in the
// implementation-defined range (-32000..-32019) that MCP leaves free and
// that no SDK uses (the Go SDK has -32001..-32005: -32003 would read as
// "client is closing" and break the session).
const (
	codeParseError     = -32700
	codeInvalidRequest = -32600
	codeMethodNotFound = -32601
	codeInvalidParams  = -32602
	codeInternal       = -32603
	codeForbidden      = -32010
	codeHeaderMismatch = -32020
	codeUnsupportedVer = -32022
)

// Reason codes this package adds to the protocol's (error.data.reason).
const (
	CodeHeaderMismatch     = "header_mismatch"
	CodeUnknownMethod      = "unknown_method"
	CodeBatchNotAllowed    = "batch_not_allowed"
	CodeUnsupportedVersion = "unsupported_protocol_version"
	CodeLegacyTransport    = "legacy_transport_refused"
	CodeSessionRequired    = "session_required"
	CodeSessionUnknown     = "session_unknown"
	CodeToolNotApproved    = "tool_not_approved"
	CodeUnknownResponse    = "unknown_response_id"
	CodeObligation         = "unsupported_obligation"
	CodeTaskForbidden      = "task_forbidden"
	CodeInvalidToolName    = "invalid_tool_name"
)

// rpcCode maps a reason to the JSON-RPC error code clients see.
func rpcCode(reason string) int {
	switch reason {
	case protocol.CodeInvalidJSON:
		return codeParseError
	case protocol.CodeInvalidRequest, CodeBatchNotAllowed, CodeLegacyTransport, CodeSessionRequired, CodeUnknownResponse,
		protocol.CodeBodyTooLarge, protocol.CodeUnsupportedMedia, protocol.CodeForbiddenOrigin, protocol.CodeMethodNotAllowed:
		return codeInvalidRequest
	case CodeUnknownMethod:
		return codeMethodNotFound
	case CodeHeaderMismatch:
		return codeHeaderMismatch
	case CodeUnsupportedVersion:
		return codeUnsupportedVer
	case protocol.CodeInternal, protocol.CodeUpstreamError, protocol.CodeUpstreamTimeout, protocol.CodeAuditUnavailable:
		return codeInternal
	}
	return codeForbidden
}

// errorObject is a JSON-RPC error response for id.
func errorObject(id any, reason, message string) map[string]any {
	data := map[string]any{"reason": reason}
	if reason == CodeUnsupportedVersion {
		// 2026-07-28 UnsupportedProtocolVersionError: clients renegotiate from it.
		data["supported"] = []string{Rev20260728, Rev20251125, Rev20250618, Rev20250326}
	}
	return map[string]any{
		"jsonrpc": "2.0",
		"id":      id,
		"error": map[string]any{
			"code":    int64(rpcCode(reason)),
			"message": message,
			"data":    data,
		},
	}
}

// writeRPCError writes e as one JSON-RPC error per id (an array when batch).
func writeRPCError(w http.ResponseWriter, e *protocol.Error, ids []any, batch bool) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	var v any
	if batch {
		arr := make([]any, len(ids))
		for i, id := range ids {
			arr[i] = errorObject(id, e.Code, e.Message)
		}
		v = arr
	} else {
		var id any
		if len(ids) > 0 {
			id = ids[0]
		}
		v = errorObject(id, e.Code, e.Message)
	}
	b, _ := jsonstrict.Marshal(v)
	w.WriteHeader(e.Status)
	_, _ = w.Write(b)
}

// The gateway answers refusals through Protocol.WriteError, which gets the
// *http.Request but not the Exchange. To put the request's own ids in that
// answer, Parse remembers its exchange under a weak pointer to the request;
// the entry disappears when the request is garbage. The exchange must never
// reference the request, or the entry would live forever.
var stash sync.Map // weak.Pointer[http.Request] → *exchange

func remember(r *http.Request, x *exchange) {
	if r == nil {
		return
	}
	k := weak.Make(r)
	stash.Store(k, x)
	runtime.AddCleanup(r, func(k weak.Pointer[http.Request]) { stash.Delete(k) }, k)
}

func stashed(r *http.Request) *exchange {
	if r == nil {
		return nil
	}
	if v, ok := stash.Load(weak.Make(r)); ok {
		return v.(*exchange)
	}
	return nil
}
