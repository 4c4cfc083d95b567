package qdrant

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
)

// Response implements protocol.Exchange. Collection and alias lists are
// filtered to what the caller may read; a tenant-bound read is buffered
// (bounded) and every point in it checked: one point of another tenant
// withholds the whole response and raises the tenant_leak alert. With a
// Guard, the payloads of a read that returns points are scanned and points
// policy denies for their verdict are removed (guardPoints). Everything
// else streams through untouched, and a buffered response from which
// nothing was removed or rewritten is forwarded as the upstream sent it.
func (x *exchange) Response(ctx context.Context, resp *http.Response, env *protocol.ResponseEnv) error {
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil
	}
	list := x.m.r.class == classList
	check := x.tenant != nil && (x.m.r.class == classSearch || x.m.r.class == classRetrieve)
	scan := x.guard != nil && x.returnsPoints()
	if !list && !check && !scan {
		return nil
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
		x.respError = "encoded"
		return errf(http.StatusBadGateway, CodeUpstreamMalformed, "upstream response could not be checked")
	}
	raw, err := readBounded(resp, x.opt.MaxResponseBytes)
	if err != nil {
		x.respError = "read"
		return &protocol.Error{Status: http.StatusBadGateway, Code: protocol.CodeUpstreamError, Message: "upstream response could not be checked", Err: err}
	}
	v, err := jsonstrict.Parse(raw, jsonstrict.Options{MaxBytes: x.opt.MaxResponseBytes, MaxDepth: 256})
	body, ok := v.(map[string]any)
	if err != nil || !ok {
		x.respError = "malformed"
		return &protocol.Error{Status: http.StatusBadGateway, Code: CodeUpstreamMalformed, Message: "upstream response could not be checked", Err: err}
	}
	// The tenant check and list filter always re-encode (they may rewrite
	// payloads); the guard alone only when it removed a point.
	changed := list || check
	switch {
	case list:
		if err := x.filterList(ctx, body, env); err != nil {
			return err
		}
	case check && x.m.r.class == classRetrieve:
		if err := x.filterRecords(body); err != nil {
			return err
		}
	case check:
		if n, _ := x.checkPoints(body["result"], 0); n > 0 {
			x.leaked, x.alert = n, alertTenantLeak
			x.p.log.WarnContext(ctx, "qdrant: response held points of another tenant; withheld",
				"operation", x.m.r.op, "collection", x.m.collection, "points", n)
			return errf(http.StatusBadGateway, CodeTenantLeak, "upstream response withheld: it held data outside the caller's tenant")
		}
		x.restorePayloads(body["result"])
	}
	// The guard scans what the client will get: after the tenant check
	// gave back the payload the client asked for.
	if scan {
		removed, err := x.guardPoints(ctx, body, env)
		if err != nil {
			return err
		}
		changed = changed || removed
	}
	if !changed {
		setBody(resp, raw)
		return nil
	}
	out, err := jsonstrict.Marshal(body)
	if err != nil {
		return internal(fmt.Errorf("qdrant: re-encode response: %w", err))
	}
	setBody(resp, out)
	return nil
}

// filterList drops collections (and aliases of collections) the caller may
// not read. Without an Authorizer nothing is shown: fail closed.
func (x *exchange) filterList(ctx context.Context, body map[string]any, env *protocol.ResponseEnv) error {
	res, _ := body["result"].(map[string]any)
	key, nameKey := "collections", "name"
	if x.m.r.op == "aliases.list" {
		key, nameKey = "aliases", "collection_name"
	}
	items, ok := res[key].([]any)
	if !ok {
		x.respError = "malformed"
		return errf(http.StatusBadGateway, CodeUpstreamMalformed, "upstream response could not be checked")
	}
	calls := make([]protocol.Call, len(items))
	for i, it := range items {
		m, _ := it.(map[string]any)
		name, _ := m[nameKey].(string)
		calls[i] = protocol.Call{Action: protocol.ActionRead, Operation: operationCollectionsListItem,
			Resource: x.collectionResource(name)}
	}
	var ds []protocol.Decision
	if env != nil && env.Authorize != nil && len(calls) > 0 {
		var err error
		ds, err = env.Authorize(ctx, calls)
		if err != nil || len(ds) != len(calls) {
			x.respError = "authorize"
			return &protocol.Error{Status: http.StatusServiceUnavailable, Code: protocol.CodePolicyError, Message: "collection list could not be authorized", Err: err}
		}
	}
	kept := make([]any, 0, len(items))
	for i, it := range items {
		if ds != nil && ds[i].Allow {
			kept = append(kept, it)
		}
	}
	x.hidden = len(items) - len(kept)
	res[key] = kept
	x.apply("list_filter")
	return nil
}

// checkPoints counts the points in v (any Qdrant result shape: a record,
// lists, {points}, {groups:[{hits, lookup}]}) whose payload does not carry
// the caller's tenant value. checked counts the caller's points.
func (x *exchange) checkPoints(v any, depth int) (bad, checked int) {
	if depth > 16 {
		return 1, 0
	}
	switch t := v.(type) {
	case []any:
		for _, e := range t {
			b, c := x.checkPoints(e, depth+1)
			bad += b
			checked += c
		}
	case map[string]any:
		if _, isPoint := t["id"]; isPoint {
			if _, hasScore := t["hits"]; !hasScore {
				// Warden asked for the tenant key on every point
				// (exposeTenant): a point without it is not the caller's.
				pl, _ := t["payload"].(map[string]any)
				if pl != nil && x.tenant.sameValue(pl[x.tenant.Field]) {
					return 0, 1
				}
				return 1, 0
			}
		}
		for _, k := range []string{"points", "groups", "hits", "lookup"} {
			if e, ok := t[k]; ok {
				b, c := x.checkPoints(e, depth+1)
				bad += b
				checked += c
			}
		}
	}
	return bad, checked
}

// filterRecords confines a retrieval by id to the tenant the same way a
// filter would: records of other tenants (or without the tenant key) are
// dropped from a retrieve, and a single-point GET of one answers 404 as if
// the point did not exist, so ids are no cross-tenant existence oracle.
func (x *exchange) filterRecords(body map[string]any) error {
	own := func(r any) bool {
		m, _ := r.(map[string]any)
		pl, _ := m["payload"].(map[string]any)
		return pl != nil && x.tenant.sameValue(pl[x.tenant.Field])
	}
	if x.m.r.op == "points.get" {
		if !own(body["result"]) {
			x.hidden = 1
			return errf(http.StatusNotFound, protocol.CodeNotFound, "Not found: point does not exist")
		}
		return nil
	}
	recs, ok := body["result"].([]any)
	if !ok {
		x.respError = "malformed"
		return errf(http.StatusBadGateway, CodeUpstreamMalformed, "upstream response could not be checked")
	}
	kept := recs[:0]
	for _, r := range recs {
		if own(r) {
			kept = append(kept, r)
		}
	}
	x.hidden = len(recs) - len(kept)
	body["result"] = kept
	if x.forced {
		x.project(kept)
	}
	return nil
}

// restorePayloads undoes exposeTenant on the response: per sub-request
// (batch results are aligned with searches[]) it strips the added tenant
// key or drops the payload the client did not ask for.
func (x *exchange) restorePayloads(result any) {
	if len(x.modes) == 0 {
		return
	}
	if strings.HasSuffix(x.m.r.op, ".batch") {
		list, _ := result.([]any)
		for i, r := range list {
			if i < len(x.modes) {
				x.strip(r, x.modes[i], 0)
			}
		}
		return
	}
	x.strip(result, x.modes[0], 0)
}

// strip applies one payload mode to every point in v (the shapes
// checkPoints walks).
func (x *exchange) strip(v any, mode uint8, depth int) {
	if depth > 16 || mode == payloadAsked || mode == payloadNone {
		return
	}
	switch t := v.(type) {
	case []any:
		for _, e := range t {
			x.strip(e, mode, depth+1)
		}
	case map[string]any:
		if _, isPoint := t["id"]; isPoint {
			if _, isGroup := t["hits"]; !isGroup {
				if mode == payloadDrop {
					delete(t, "payload")
				} else if pl, ok := t["payload"].(map[string]any); ok {
					delete(pl, x.tenant.Field)
				}
				return
			}
		}
		for _, k := range []string{"points", "groups", "hits"} {
			if e, ok := t[k]; ok {
				x.strip(e, mode, depth+1)
			}
		}
	}
}

// project gives a retrieve the payload the client asked for after Warden
// forced with_payload to read the tenant key: false or absent drops it, a
// key list or {include}/{exclude} selects top-level keys.
func (x *exchange) project(v any) {
	recs, _ := v.([]any)
	for _, r := range recs {
		m, ok := r.(map[string]any)
		if !ok {
			continue
		}
		pl, _ := m["payload"].(map[string]any)
		switch w := x.userWith.(type) {
		case nil, bool:
			m["payload"] = nil
		case []any:
			m["payload"] = pick(pl, w, true)
		case map[string]any:
			if inc, ok := w["include"].([]any); ok {
				m["payload"] = pick(pl, inc, true)
			} else if exc, ok := w["exclude"].([]any); ok {
				m["payload"] = pick(pl, exc, false)
			} else {
				m["payload"] = nil
			}
		default:
			m["payload"] = nil
		}
	}
}

func pick(pl map[string]any, keys []any, include bool) map[string]any {
	set := map[string]bool{}
	for _, k := range keys {
		if s, ok := k.(string); ok {
			set[s] = true
		}
	}
	out := map[string]any{}
	for k, v := range pl {
		if set[k] == include {
			out[k] = v
		}
	}
	return out
}

func readBounded(resp *http.Response, limit int64) ([]byte, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("qdrant: read response: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("qdrant: response larger than %d bytes", limit)
	}
	return b, nil
}

func setBody(resp *http.Response, b []byte) {
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	resp.Header.Del("Transfer-Encoding")
}
