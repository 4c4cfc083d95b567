package mcp

import (
	"errors"
	"strconv"
	"strings"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
)

type msgKind uint8

const (
	kindRequest msgKind = iota + 1
	kindNotification
	kindResponse
)

// message is one strictly parsed JSON-RPC 2.0 message.
type message struct {
	kind   msgKind
	id     any    // string or jsonstrict.Number (an integer); nil for notifications
	idKey  string // "s:<string>" or "n:<integer>": equal ids, equal keys
	method string
	params map[string]any // nil when absent
	result map[string]any // responses: result object (nil for errors)
	errObj map[string]any // responses: error object
}

var rpcKeys = []string{"jsonrpc", "id", "method", "params", "result", "error"}

var errMsg = errors.New("invalid JSON-RPC message")

// parseMessage validates v as a JSON-RPC 2.0 message under MCP's rules: ids
// are strings or integers, never null; params is an object; a response has
// exactly one of result and error. Keys that a lenient upstream would read
// as one of ours (case or NUL variants) are refused; any other extra key is
// dropped by the re-encoding.
func parseMessage(v any) (*message, *protocol.Error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, invalid("a JSON-RPC message must be an object")
	}
	if err := jsonstrict.CheckKeys(obj, rpcKeys...); err != nil {
		return nil, invalid("ambiguous JSON-RPC member name")
	}
	if s, _ := obj["jsonrpc"].(string); s != "2.0" {
		return nil, invalid(`"jsonrpc" must be "2.0"`)
	}
	m := &message{}
	idv, hasID := obj["id"]
	if hasID {
		key, ok := idKey(idv)
		if !ok {
			return nil, invalid(`"id" must be a string or an integer`)
		}
		m.id, m.idKey = idv, key
	}
	methv, hasMethod := obj["method"]
	_, hasResult := obj["result"]
	_, hasError := obj["error"]
	switch {
	case hasMethod:
		s, ok := methv.(string)
		if !ok || s == "" {
			return nil, invalid(`"method" must be a non-empty string`)
		}
		if hasResult || hasError {
			return nil, invalid("a request cannot carry a result or an error")
		}
		m.method = s
		if pv, ok := obj["params"]; ok {
			p, ok := pv.(map[string]any)
			if !ok {
				return nil, invalid(`"params" must be an object`)
			}
			m.params = p
		}
		if hasID {
			m.kind = kindRequest
		} else {
			m.kind = kindNotification
		}
	case hasResult != hasError:
		if !hasID {
			return nil, invalid("a response needs an id")
		}
		if _, ok := obj["params"]; ok {
			return nil, invalid("a response cannot carry params")
		}
		m.kind = kindResponse
		if hasResult {
			r, ok := obj["result"].(map[string]any)
			if !ok {
				return nil, invalid(`"result" must be an object`)
			}
			m.result = r
		} else {
			e, ok := obj["error"].(map[string]any)
			if !ok {
				return nil, invalid(`"error" must be an object`)
			}
			if _, ok := jsonstrict.Int(e["code"]); !ok {
				return nil, invalid("error code must be an integer")
			}
			if _, ok := e["message"].(string); !ok {
				return nil, invalid("error message must be a string")
			}
			m.errObj = e
		}
	default:
		return nil, invalid("not a request, notification or response")
	}
	return m, nil
}

// idKey canonicalizes an id: strings as is, integers in decimal (so 1 and
// 1 written differently cannot be two ids). Fractions, exponents, null,
// and integers beyond int64 are not ids.
func idKey(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return "s:" + x, true
	case jsonstrict.Number:
		s := string(x)
		if strings.ContainsAny(s, ".eE") {
			return "", false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return "", false
		}
		return "n:" + strconv.FormatInt(n, 10), true
	case int64:
		return "n:" + strconv.FormatInt(x, 10), true
	case int:
		return "n:" + strconv.Itoa(x), true
	}
	return "", false
}

// encode returns the canonical object for m: only the JSON-RPC members.
func (m *message) encode() map[string]any {
	o := map[string]any{"jsonrpc": "2.0"}
	if m.kind != kindNotification {
		o["id"] = m.id
	}
	switch m.kind {
	case kindRequest, kindNotification:
		o["method"] = m.method
		if m.params != nil {
			o["params"] = m.params
		}
	case kindResponse:
		if m.errObj != nil {
			o["error"] = m.errObj
		} else {
			o["result"] = m.result
		}
	}
	return o
}

func invalid(msg string) *protocol.Error {
	return &protocol.Error{Status: 400, Code: protocol.CodeInvalidRequest, Message: msg, Err: errMsg}
}

// methodInfo describes a client→server method.
type methodInfo struct {
	action       string
	notification bool
}

// clientMethods is every client→server method of every revision. Anything
// else is refused unless the backend lists it in extra_methods.
var clientMethods = map[string]methodInfo{
	"initialize":               {action: protocol.ActionRead},
	"ping":                     {action: protocol.ActionRead},
	"server/discover":          {action: protocol.ActionRead},
	"tools/list":               {action: protocol.ActionRead},
	"tools/call":               {action: protocol.ActionInvoke},
	"resources/list":           {action: protocol.ActionRead},
	"resources/templates/list": {action: protocol.ActionRead},
	"resources/read":           {action: protocol.ActionRead},
	"resources/subscribe":      {action: protocol.ActionRead},
	"resources/unsubscribe":    {action: protocol.ActionRead},
	"subscriptions/listen":     {action: protocol.ActionRead},
	"prompts/list":             {action: protocol.ActionRead},
	"prompts/get":              {action: protocol.ActionRead},
	"completion/complete":      {action: protocol.ActionRead},
	"logging/setLevel":         {action: protocol.ActionWrite},
	"tasks/get":                {action: protocol.ActionRead},
	"tasks/result":             {action: protocol.ActionRead},
	"tasks/list":               {action: protocol.ActionRead},
	"tasks/cancel":             {action: protocol.ActionWrite},

	"notifications/initialized":        {action: protocol.ActionRead, notification: true},
	"notifications/cancelled":          {action: protocol.ActionRead, notification: true},
	"notifications/progress":           {action: protocol.ActionRead, notification: true},
	"notifications/roots/list_changed": {action: protocol.ActionRead, notification: true},
	"notifications/tasks/status":       {action: protocol.ActionRead, notification: true},
}

// ActionServerRequest is the action of server→client requests that make
// the client act for the server (sampling spends the caller's LLM budget
// on a server-chosen prompt; elicitation asks the user, possibly for a
// URL; roots/list reveals the file system layout). It is deliberately not
// one of the four coarse actions, so a role granting "*" or invoke on the
// backend does not let its servers sample or elicit: a role must list it.
const ActionServerRequest = "server_request"

// serverMethods is every server→client method; others are dropped.
var serverMethods = map[string]methodInfo{
	"ping":                                     {action: protocol.ActionRead},
	"sampling/createMessage":                   {action: ActionServerRequest},
	"elicitation/create":                       {action: ActionServerRequest},
	"roots/list":                               {action: ActionServerRequest},
	"tasks/get":                                {action: ActionServerRequest},
	"tasks/result":                             {action: ActionServerRequest},
	"tasks/list":                               {action: ActionServerRequest},
	"tasks/cancel":                             {action: ActionServerRequest},
	"notifications/message":                    {action: protocol.ActionRead, notification: true},
	"notifications/progress":                   {action: protocol.ActionRead, notification: true},
	"notifications/cancelled":                  {action: protocol.ActionRead, notification: true},
	"notifications/resources/updated":          {action: protocol.ActionRead, notification: true},
	"notifications/resources/list_changed":     {action: protocol.ActionRead, notification: true},
	"notifications/tools/list_changed":         {action: protocol.ActionRead, notification: true},
	"notifications/prompts/list_changed":       {action: protocol.ActionRead, notification: true},
	"notifications/tasks/status":               {action: protocol.ActionRead, notification: true},
	"notifications/elicitation/complete":       {action: protocol.ActionRead, notification: true},
	"notifications/subscriptions/acknowledged": {action: protocol.ActionRead, notification: true},
}

// listFields maps a list method to its result array and to the method a
// caller would use on one item (the Call each item is filtered by).
var listFields = map[string]struct{ field, itemMethod string }{
	"tools/list":               {"tools", "tools/call"},
	"resources/list":           {"resources", "resources/read"},
	"resources/templates/list": {"resourceTemplates", "resources/read"},
	"prompts/list":             {"prompts", "prompts/get"},
}
