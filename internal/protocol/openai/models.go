package openai

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
)

func slogString(k, v string) slog.Attr { return slog.String(k, v) }

// ModelCalls returns one invoke Call per model id, the calls a model list
// is filtered with. Shared with the Anthropic package.
func ModelCalls(provider string, ids []string) []protocol.Call {
	calls := make([]protocol.Call, len(ids))
	for i, id := range ids {
		calls[i] = protocol.Call{Action: protocol.ActionInvoke, Operation: opModelUse,
			Resource: map[string]any{"provider": provider, "operation": opModelUse, "model": id}}
	}
	return calls
}

// AuthorizeModels returns, for each id, whether the caller may use it.
// With no authorizer it fails closed.
func AuthorizeModels(ctx context.Context, env *protocol.ResponseEnv, provider string, ids []string) ([]bool, error) {
	if env == nil || env.Authorize == nil {
		return nil, &protocol.Error{Status: http.StatusInternalServerError, Code: protocol.CodePolicyError, Message: "model access could not be checked",
			Err: fmt.Errorf("%s: no authorizer for model filtering", provider)}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	ds, err := env.Authorize(ctx, ModelCalls(provider, ids))
	if err == nil && len(ds) != len(ids) {
		err = fmt.Errorf("%s: %d decisions for %d models", provider, len(ds), len(ids))
	}
	if err != nil {
		return nil, &protocol.Error{Status: http.StatusInternalServerError, Code: protocol.CodePolicyError, Message: "model access could not be checked", Err: err}
	}
	ok := make([]bool, len(ids))
	for i, d := range ds {
		ok[i] = d.Allow
	}
	return ok, nil
}

// filterModels keeps only the data[] entries whose id the caller may invoke.
func (x *exchange) filterModels(ctx context.Context, resp *http.Response, env *protocol.ResponseEnv) error {
	raw, err := ReadBounded(resp, x.lim.MaxResponseBytes)
	if err != nil {
		return err
	}
	n, err := FilterModelList(ctx, env, "openai", raw, x.lim.MaxResponseBytes, resp)
	x.modelsOut = n
	return err
}

// FilterModelList rewrites a {"data":[{"id":...}]} list body to the models
// the caller may use and installs it as resp's body; it returns how many
// remain. Entries without a string id are dropped.
func FilterModelList(ctx context.Context, env *protocol.ResponseEnv, provider string, raw []byte, limit int64, resp *http.Response) (int, error) {
	v, err := jsonstrict.Parse(raw, jsonstrict.Options{MaxBytes: limit})
	obj, ok := v.(map[string]any)
	if err != nil || !ok {
		return 0, &protocol.Error{Status: http.StatusBadGateway, Code: CodeUpstreamMalformed, Message: "upstream returned a malformed model list", Err: err}
	}
	data, _, err := jsonstrict.GetArray(obj, "data")
	if err != nil {
		return 0, &protocol.Error{Status: http.StatusBadGateway, Code: CodeUpstreamMalformed, Message: "upstream returned a malformed model list", Err: err}
	}
	var ids []string
	var items []any
	for _, it := range data {
		m, ok := it.(map[string]any)
		if !ok {
			continue
		}
		if id, ok, _ := jsonstrict.GetString(m, "id"); ok {
			ids = append(ids, id)
			items = append(items, it)
		}
	}
	allowed, err := AuthorizeModels(ctx, env, provider, ids)
	if err != nil {
		return 0, err
	}
	kept := []any{}
	for i, it := range items {
		if allowed[i] {
			kept = append(kept, it)
		}
	}
	obj["data"] = kept
	// Pagination markers (Anthropic) could name a hidden model.
	for _, k := range []string{"first_id", "last_id"} {
		if _, ok := obj[k]; ok {
			obj[k] = nil
			if len(kept) > 0 {
				if k == "first_id" {
					obj[k] = kept[0].(map[string]any)["id"]
				} else {
					obj[k] = kept[len(kept)-1].(map[string]any)["id"]
				}
			}
		}
	}
	out, err := jsonstrict.Marshal(obj)
	if err != nil {
		return 0, &protocol.Error{Status: http.StatusBadGateway, Code: CodeUpstreamMalformed, Message: "upstream returned a malformed model list", Err: err}
	}
	SetBody(resp, nopCloser(out), int64(len(out)))
	return len(kept), nil
}

// checkModel hides a model the caller may not use behind a 404, as if it
// did not exist.
func (x *exchange) checkModel(ctx context.Context, env *protocol.ResponseEnv) error {
	ok, err := AuthorizeModels(ctx, env, "openai", []string{x.model})
	if err != nil {
		return err
	}
	if !ok[0] {
		return ModelNotFound(x.model)
	}
	return nil
}

// ModelNotFound is the 404 for a model the caller may not see.
func ModelNotFound(model string) *protocol.Error {
	return &protocol.Error{Status: http.StatusNotFound, Code: CodeModelNotFound,
		Message: fmt.Sprintf("The model %q does not exist or you do not have access to it.", model), Err: &paramError{param: "model"}}
}
