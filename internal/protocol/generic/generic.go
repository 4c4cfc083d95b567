// Package generic is the "http" backend kind: any HTTP API, classified by
// method alone (GET, HEAD and OPTIONS read; everything else writes). It is
// the fallback when no protocol-aware package applies, and it is deliberately
// coarse: policy sees the method and path, never the body.
package generic

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/wardenhq/warden/internal/protocol"
)

// Protocol is the generic HTTP protocol.
type Protocol struct{}

var _ protocol.Protocol = Protocol{}

// Name implements protocol.Protocol.
func (Protocol) Name() string { return "http" }

// Parse implements protocol.Protocol.
func (Protocol) Parse(_ context.Context, req *protocol.Request) (protocol.Exchange, error) {
	r := req.HTTP
	action := protocol.ActionWrite
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		action = protocol.ActionRead
	case http.MethodConnect, http.MethodTrace:
		return nil, protocol.Errorf(http.StatusMethodNotAllowed, protocol.CodeMethodNotAllowed, "method %s is not allowed", r.Method)
	}
	return &exchange{
		body: req.Body,
		call: protocol.Call{
			Action:    action,
			Operation: r.Method,
			Resource:  map[string]any{"path": r.URL.Path, "method": r.Method},
		},
	}, nil
}

// WriteError implements protocol.Protocol with Warden's own JSON error shape:
// {"error":{"code":"...","message":"..."}}.
func (Protocol) WriteError(w http.ResponseWriter, _ *http.Request, e *protocol.Error) {
	WriteJSONError(w, e)
}

// WriteJSONError writes e as {"error":{"code","message"}}; used wherever no
// protocol is known yet (unknown route, unauthenticated).
func WriteJSONError(w http.ResponseWriter, e *protocol.Error) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}{Error: struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{e.Code, e.Message}})
}

type exchange struct {
	body []byte
	call protocol.Call
}

func (x *exchange) Calls() []protocol.Call { return []protocol.Call{x.call} }

func (x *exchange) Forward(_ context.Context, ds []protocol.Decision) ([]byte, error) {
	for _, d := range ds {
		if len(d.Obligations) > 0 {
			for k := range d.Obligations {
				if k != "limits" { // limits are enforced by the gateway itself
					return nil, protocol.Errorf(http.StatusForbidden, protocol.CodePolicyDenied, "request denied")
				}
			}
		}
	}
	return x.body, nil
}

func (x *exchange) Response(context.Context, *http.Response, *protocol.ResponseEnv) error { return nil }

func (x *exchange) Audit() map[string]any { return nil }
