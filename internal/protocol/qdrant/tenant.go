package qdrant

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
)

// Tenant is the confinement a policy obligation puts on a request: every
// point read or written must carry Value under the top-level payload key
// Field.
//
// The obligation is {"tenant": {"field": "tenant_id", "value": "acme"}},
// or {"tenant": "acme"} when the backend option tenant_field names the
// key. Value is a string or an integer.
type Tenant struct {
	Field string
	// Value is a string or a jsonstrict.Number (integers).
	Value any
}

// cond is the must condition Warden adds for t.
func (t *Tenant) cond() map[string]any {
	return map[string]any{"key": t.Field, "match": map[string]any{"value": t.Value}}
}

// tenantOf reads the obligations of one decision. Unknown obligations are
// refused: fail closed.
func (x *exchange) tenantOf(obl map[string]any) (*Tenant, error) {
	var t *Tenant
	for k, v := range obl {
		switch k {
		case obligationLimits:
		case obligationTenant:
			tt, err := parseTenant(v, x.opt.TenantField)
			if err != nil {
				return nil, &protocol.Error{Status: http.StatusForbidden, Code: CodeObligationRejected,
					Message: "request denied: policy attached a tenant condition Warden cannot apply", Err: err}
			}
			t = tt
		default:
			return nil, &protocol.Error{Status: http.StatusForbidden, Code: CodeObligationRejected,
				Message: "request denied: policy attached a condition this endpoint cannot apply", Err: fmt.Errorf("qdrant: unsupported obligation %q", k)}
		}
	}
	return t, nil
}

func parseTenant(v any, defField string) (*Tenant, error) {
	field := defField
	val := v
	if m, ok := v.(map[string]any); ok {
		for k := range m {
			if k != "field" && k != "value" {
				return nil, fmt.Errorf("qdrant: tenant obligation: unknown key %q", k)
			}
		}
		f, ok := m["field"].(string)
		if !ok {
			return nil, errors.New("qdrant: tenant obligation: field must be a string")
		}
		field, val = f, m["value"]
	}
	if field == "" || strings.ContainsAny(field, `.[]"*`) {
		return nil, errors.New("qdrant: tenant obligation: field must be a top-level payload key (set tenant_field or use the object form)")
	}
	switch vv := val.(type) {
	case string:
		if vv == "" {
			return nil, errors.New("qdrant: tenant obligation: empty value")
		}
		return &Tenant{Field: field, Value: vv}, nil
	default:
		n, ok := jsonstrict.Int(val)
		if !ok {
			return nil, errors.New("qdrant: tenant obligation: value must be a string or an integer")
		}
		return &Tenant{Field: field, Value: jsonstrict.Number(strconv.FormatInt(n, 10))}, nil
	}
}

// sameValue compares a payload value with the tenant value.
func (t *Tenant) sameValue(v any) bool {
	switch tv := t.Value.(type) {
	case string:
		s, ok := v.(string)
		return ok && s == tv
	case jsonstrict.Number:
		a, ok1 := jsonstrict.Int(v)
		b, ok2 := jsonstrict.Int(tv)
		return ok1 && ok2 && a == b
	}
	return false
}

// touches reports whether a payload key path may address the tenant key.
// Deliberately coarse: any path mentioning the field name counts, so that
// quoting ("\"tenant_id\""), array ("tenant_id[]") or nested spellings
// cannot slip past.
func (t *Tenant) touches(key string) bool { return strings.Contains(key, t.Field) }

var (
	errNotObject = errors.New("not an object")
)

func badRequest(format string, args ...any) *protocol.Error {
	return errf(http.StatusBadRequest, protocol.CodeInvalidRequest, format, args...)
}

// --- Parse-time inspection (independent of policy) ---

// requestKeys are the request fields Warden interprets; case or NUL
// variants of them are refused as ambiguous.
var requestKeys = []string{"filter", "prefetch", "query", "searches", "points", "batch", "payload", "payloads",
	"ids", "operations", "with_lookup", "lookup_from", "positive", "negative", "target", "context",
	"update_filter", "key", "keys", "with_payload", "shard_key", "vector", "vectors"}

var filterKeys = []string{"must", "should", "must_not", "min_should", "key", "match", "nested", "is_empty", "is_null", "has_id", "conditions"}

func checkKeys(obj map[string]any, known []string) error {
	if err := jsonstrict.CheckKeys(obj, known...); err != nil {
		return errf(http.StatusBadRequest, CodeAmbiguousJSON, "ambiguous request: %v", err)
	}
	return nil
}

// inspect validates the request shape Warden relies on, bounds batch
// sizes, adds one Call per lookup collection and notes id-based examples.
func (x *exchange) inspect() error {
	switch x.m.r.class {
	case classSearch:
		reqs, err := x.subRequests()
		if err != nil {
			return err
		}
		seen := map[string]int{}
		for _, r := range reqs {
			if err := x.inspectRead(r, seen, 0); err != nil {
				return err
			}
		}
	case classRetrieve:
		if err := checkKeys(x.tree, requestKeys); err != nil {
			return err
		}
		ids, _, err := jsonstrict.GetArray(x.tree, "ids")
		if err != nil {
			return badRequest("ids must be an array")
		}
		if len(ids) > x.opt.MaxBatch {
			return x.tooLarge("ids")
		}
	case classWrite:
		return x.inspectWrite()
	}
	return nil
}

func (x *exchange) tooLarge(what string) *protocol.Error {
	return errf(http.StatusRequestEntityTooLarge, CodeBatchTooLarge, "too many %s in one request (at most %d through Warden)", what, x.opt.MaxBatch)
}

// subRequests returns the request objects a read carries: searches[] for
// batch endpoints, else the body itself.
func (x *exchange) subRequests() ([]map[string]any, error) {
	if err := checkKeys(x.tree, requestKeys); err != nil {
		return nil, err
	}
	if !strings.HasSuffix(x.m.r.op, ".batch") {
		return []map[string]any{x.tree}, nil
	}
	arr, ok, err := jsonstrict.GetArray(x.tree, "searches")
	if err != nil || !ok {
		return nil, badRequest("searches must be an array")
	}
	if len(arr) > x.opt.MaxBatch {
		return nil, x.tooLarge("searches")
	}
	out := make([]map[string]any, 0, len(arr))
	for _, v := range arr {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, badRequest("searches must hold objects")
		}
		if err := checkKeys(m, requestKeys); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// addLookup adds the read Call for a lookup collection (once per name) and
// returns its index in x.calls.
func (x *exchange) addLookup(name string, seen map[string]int) (int, error) {
	if !validName(name) {
		return 0, badRequest("lookup collection name not allowed through Warden")
	}
	if i, ok := seen[name]; ok {
		return i, nil
	}
	seen[name] = len(x.calls)
	x.calls = append(x.calls, protocol.Call{Action: protocol.ActionRead, Operation: "points.lookup",
		Resource: x.collectionResource(name)})
	return seen[name], nil
}

func (x *exchange) inspectRead(r map[string]any, seen map[string]int, depth int) error {
	if depth > maxPrefetchDepth {
		return badRequest("prefetch nested too deeply")
	}
	if f, ok := r["filter"]; ok && f != nil {
		if _, ok := f.(map[string]any); !ok {
			return badRequest("filter must be an object")
		}
	}
	if v, ok := r["lookup_from"]; ok && v != nil {
		m, ok := v.(map[string]any)
		c, ok2 := m["collection"].(string)
		if !ok || !ok2 {
			return badRequest("lookup_from.collection must be a string")
		}
		if _, err := x.addLookup(c, seen); err != nil {
			return err
		}
	}
	if v, ok := r["with_lookup"]; ok && v != nil {
		var c string
		switch w := v.(type) {
		case string:
			c = w
		case map[string]any:
			c, _ = w["collection"].(string)
		}
		if c == "" {
			return badRequest("with_lookup must name a collection")
		}
		i, err := x.addLookup(c, seen)
		if err != nil {
			return err
		}
		x.withLookup, x.lookupCall = true, i
	}
	op := x.m.r.op
	switch {
	case strings.HasPrefix(op, "points.query"):
		if q, ok := r["query"]; ok && queryHasID(q) {
			x.hasIDExamples = true
		}
	case strings.HasPrefix(op, "points.recommend"):
		for _, k := range []string{"positive", "negative"} {
			if anyScalar(r[k]) {
				x.hasIDExamples = true
			}
		}
	case strings.HasPrefix(op, "points.discover"):
		if isID(r["target"]) || contextHasID(r["context"]) {
			x.hasIDExamples = true
		}
	}
	if pf, ok := r["prefetch"]; ok && pf != nil {
		list, err := objects(pf)
		if err != nil {
			return badRequest("prefetch must be an object or an array of objects")
		}
		if len(list) > x.opt.MaxBatch {
			return x.tooLarge("prefetches")
		}
		for _, p := range list {
			if err := checkKeys(p, requestKeys); err != nil {
				return err
			}
			if err := x.inspectRead(p, seen, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// objects accepts one object or an array of objects (Qdrant's
// "single or list" fields).
func objects(v any) ([]map[string]any, error) {
	switch t := v.(type) {
	case map[string]any:
		return []map[string]any{t}, nil
	case []any:
		out := make([]map[string]any, 0, len(t))
		for _, e := range t {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, errNotObject
			}
			out = append(out, m)
		}
		return out, nil
	}
	return nil, errNotObject
}

// isID reports whether v is a point id where a vector could be (an
// ExtendedPointId: unsigned integer or UUID string).
func isID(v any) bool {
	switch v.(type) {
	case string, jsonstrict.Number:
		return true
	}
	return false
}

func anyScalar(v any) bool {
	arr, _ := v.([]any)
	for _, e := range arr {
		if isID(e) {
			return true
		}
	}
	return isID(v)
}

func contextHasID(v any) bool {
	list, err := objects(v)
	if err != nil {
		return false
	}
	for _, p := range list {
		if isID(p["positive"]) || isID(p["negative"]) {
			return true
		}
	}
	return false
}

// queryHasID walks a Query API "query" (QueryInterface) for examples given
// by point id: a bare id, nearest, recommend, discover and context inputs.
func queryHasID(q any) bool {
	if isID(q) {
		return true
	}
	m, ok := q.(map[string]any)
	if !ok {
		return false
	}
	if isID(m["nearest"]) {
		return true
	}
	if rec, ok := m["recommend"].(map[string]any); ok && (anyScalar(rec["positive"]) || anyScalar(rec["negative"])) {
		return true
	}
	if d, ok := m["discover"].(map[string]any); ok && (isID(d["target"]) || contextHasID(d["context"])) {
		return true
	}
	return contextHasID(m["context"])
}

// writeOps maps /points/batch operation names to the single-request
// operation they perform.
var writeOps = map[string]string{
	"upsert":            "points.upsert",
	"delete":            "points.delete",
	"set_payload":       "points.payload.set",
	"overwrite_payload": "points.payload.overwrite",
	"delete_payload":    "points.payload.delete",
	"clear_payload":     "points.payload.clear",
	"update_vectors":    "points.vectors.update",
	"delete_vectors":    "points.vectors.delete",
}

// writeItems returns (op, object) for each write a request performs.
func (x *exchange) writeItems() ([]string, []map[string]any, error) {
	if x.m.r.op != "points.batch" {
		return []string{x.m.r.op}, []map[string]any{x.tree}, nil
	}
	arr, ok, err := jsonstrict.GetArray(x.tree, "operations")
	if err != nil || !ok {
		return nil, nil, badRequest("operations must be an array")
	}
	if len(arr) > x.opt.MaxBatch {
		return nil, nil, x.tooLarge("operations")
	}
	ops := make([]string, 0, len(arr))
	objs := make([]map[string]any, 0, len(arr))
	for _, v := range arr {
		m, ok := v.(map[string]any)
		if !ok || len(m) != 1 {
			return nil, nil, badRequest("each operation must be an object with one key")
		}
		for k, inner := range m {
			op, known := writeOps[k]
			io, isObj := inner.(map[string]any)
			if !known || !isObj {
				return nil, nil, badRequest("unsupported batch operation")
			}
			ops = append(ops, op)
			objs = append(objs, io)
		}
	}
	return ops, objs, nil
}

func (x *exchange) inspectWrite() error {
	if err := checkKeys(x.tree, requestKeys); err != nil {
		return err
	}
	ops, objs, err := x.writeItems()
	if err != nil {
		return err
	}
	for i, o := range objs {
		if err := checkKeys(o, requestKeys); err != nil {
			return err
		}
		for _, k := range []string{"points", "ids", "keys"} {
			if arr, ok := o[k].([]any); ok && len(arr) > x.opt.MaxBatch {
				return x.tooLarge(k)
			}
		}
		if b, ok := o["batch"].(map[string]any); ok {
			if arr, ok := b["ids"].([]any); ok && len(arr) > x.opt.MaxBatch {
				return x.tooLarge("points")
			}
		}
		if f, ok := o["filter"]; ok && f != nil {
			if _, ok := f.(map[string]any); !ok {
				return badRequest("filter must be an object")
			}
		}
		if ops[i] == "points.upsert" {
			if _, hasP := o["points"]; !hasP {
				if _, hasB := o["batch"]; !hasB {
					return badRequest("upsert needs points or batch")
				}
			}
		}
	}
	return nil
}

// --- Forward-time confinement ---

// confine applies x.tenant to the parsed request.
func (x *exchange) confine() error {
	switch x.m.r.class {
	case classAdmin:
		return errf(http.StatusForbidden, CodeTenantUnsupported, "request denied: administration is not available to a tenant-bound caller")
	case classList:
		return nil
	case classMeta:
		switch x.m.r.op {
		case "collections.get", "collections.optimizations":
			return errf(http.StatusForbidden, CodeTenantUnsupported, "request denied: collection statistics span all tenants")
		}
		return nil
	case classRetrieve:
		x.apply("response_tenant_check")
		if x.tree != nil {
			x.userWith = x.tree["with_payload"]
			if x.userWith != true {
				x.tree["with_payload"] = true
				x.forced = true
				x.apply("with_payload_forced")
			}
		}
		return nil
	case classSearch:
		if x.hasIDExamples {
			return errf(http.StatusForbidden, CodeIDReference, "request denied: a tenant-bound caller may not use point ids as query examples")
		}
		if x.withLookup {
			return errf(http.StatusForbidden, CodeTenantUnsupported, "request denied: with_lookup cannot be confined to a tenant")
		}
		reqs, err := x.subRequests()
		if err != nil {
			return err
		}
		for _, r := range reqs {
			if err := x.confineRead(r, 0); err != nil {
				return err
			}
			mode, err := x.exposeTenant(r)
			if err != nil {
				return err
			}
			x.modes = append(x.modes, mode)
		}
		x.apply("tenant_filter")
		x.apply("response_tenant_check")
		return nil
	case classWrite:
		ops, objs, err := x.writeItems()
		if err != nil {
			return err
		}
		for i, o := range objs {
			if err := x.confineWrite(ops[i], o); err != nil {
				return err
			}
		}
		return nil
	}
	return errf(http.StatusForbidden, CodeTenantUnsupported, "request denied")
}

func (x *exchange) confineRead(r map[string]any, depth int) error {
	if depth > maxPrefetchDepth {
		return badRequest("prefetch nested too deeply")
	}
	if err := x.wrapFilter(r, "filter"); err != nil {
		return err
	}
	if pf, ok := r["prefetch"]; ok && pf != nil {
		list, err := objects(pf)
		if err != nil {
			return badRequest("prefetch must be an object or an array of objects")
		}
		for _, p := range list {
			if err := x.confineRead(p, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// Payload modes per sub-request of a tenant-bound read, so that every
// point in the response carries the tenant key for the response check and
// the client still gets exactly the payload it asked for.
const (
	payloadAsked uint8 = iota // the client's selection already returns the key
	payloadStrip              // Warden added the key to a selection: remove it
	payloadDrop               // the client asked for no payload: remove it all
	payloadNone               // the endpoint returns no points (count, facet, matrix)
)

// pointsOps are the reads whose response holds points with payloads, and
// whether with_payload defaults to true for them (scroll) or false.
var pointsOps = map[string]bool{
	"points.query": false, "points.query.batch": false, "points.query.groups": false,
	"points.search": false, "points.search.batch": false, "points.search.groups": false,
	"points.recommend": false, "points.recommend.batch": false, "points.recommend.groups": false,
	"points.discover": false, "points.discover.batch": false,
	"points.scroll": true,
}

// exposeTenant rewrites one sub-request's with_payload so the response
// shows the tenant key on every point, and returns how to undo that.
func (x *exchange) exposeTenant(r map[string]any) (uint8, error) {
	f := x.tenant.Field
	defTrue, ok := pointsOps[x.m.r.op]
	if !ok {
		return payloadNone, nil
	}
	w, present := r["with_payload"]
	if !present || w == nil {
		if defTrue {
			return payloadAsked, nil
		}
		w = false
	}
	switch w := w.(type) {
	case bool:
		if w {
			return payloadAsked, nil
		}
		r["with_payload"] = []any{f}
		return payloadDrop, nil
	case []any:
		if slices.Contains(w, any(f)) {
			return payloadAsked, nil
		}
		r["with_payload"] = append(w, f)
		return payloadStrip, nil
	case map[string]any:
		if inc, ok := w["include"].([]any); ok && len(w) == 1 {
			if slices.Contains(inc, any(f)) {
				return payloadAsked, nil
			}
			w["include"] = append(inc, f)
			return payloadStrip, nil
		}
		if exc, ok := w["exclude"].([]any); ok && len(w) == 1 {
			kept := exc[:0:0]
			for _, k := range exc {
				if k != any(f) {
					kept = append(kept, k)
				}
			}
			w["exclude"] = kept
			if len(kept) == len(exc) {
				return payloadAsked, nil
			}
			return payloadStrip, nil
		}
	}
	return 0, badRequest("with_payload must be a boolean, a list of keys, or {include} / {exclude}")
}

// wrapFilter replaces obj[key] (a user filter F, possibly absent) with
// {"must":[tenant, F]}. Nested as a condition, F's should, must_not and
// min_should can only narrow the result; references to the tenant key
// other than a positive match on the caller's own value are refused.
func (x *exchange) wrapFilter(obj map[string]any, key string) error {
	f, ok := obj[key]
	if !ok || f == nil {
		obj[key] = map[string]any{"must": []any{x.tenant.cond()}}
		return nil
	}
	fm, ok := f.(map[string]any)
	if !ok {
		return badRequest("%s must be an object", key)
	}
	if err := x.checkFilter(fm, true, 0); err != nil {
		return err
	}
	obj[key] = map[string]any{"must": []any{x.tenant.cond(), fm}}
	return nil
}

func conflict(format string) *protocol.Error {
	return errf(http.StatusForbidden, CodeTenantConflict, "request denied: %s", format)
}

// checkFilter walks a user filter. positive is true while every enclosing
// clause is a must.
func (x *exchange) checkFilter(f map[string]any, positive bool, depth int) error {
	if depth > jsonstrict.DefaultMaxDepth {
		return badRequest("filter nested too deeply")
	}
	if err := checkKeys(f, filterKeys); err != nil {
		return err
	}
	for k, v := range f {
		switch k {
		case "must", "should", "must_not":
			if v == nil {
				continue
			}
			list, err := objects(v)
			if err != nil {
				if arr, ok := v.([]any); ok && len(arr) == 0 {
					continue
				}
				return badRequest("filter %s must hold conditions", k)
			}
			for _, c := range list {
				if err := x.checkCond(c, positive && k == "must", depth+1); err != nil {
					return err
				}
			}
		case "min_should":
			m, ok := v.(map[string]any)
			if !ok {
				return badRequest("min_should must be an object")
			}
			list, err := objects(m["conditions"])
			if err != nil {
				return badRequest("min_should.conditions must hold conditions")
			}
			for _, c := range list {
				if err := x.checkCond(c, false, depth+1); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (x *exchange) checkCond(c map[string]any, positive bool, depth int) error {
	t := x.tenant
	if err := checkKeys(c, filterKeys); err != nil {
		return err
	}
	if k, ok := c["key"]; ok {
		ks, ok := k.(string)
		if !ok {
			return badRequest("condition key must be a string")
		}
		if t.touches(ks) {
			if !positive || ks != t.Field || len(c) != 2 {
				return conflict("filter conditions on the tenant key may only match the caller's tenant")
			}
			m, ok := c["match"].(map[string]any)
			if !ok || len(m) != 1 || !t.sameValue(m["value"]) {
				return conflict("filter conditions on the tenant key may only match the caller's tenant")
			}
		}
		return nil
	}
	for _, k := range []string{"is_empty", "is_null"} {
		if v, ok := c[k].(map[string]any); ok {
			if ks, _ := v["key"].(string); t.touches(ks) {
				return conflict("filter conditions on the tenant key may only match the caller's tenant")
			}
		}
	}
	if n, ok := c["nested"].(map[string]any); ok {
		if ks, _ := n["key"].(string); t.touches(ks) {
			return conflict("filter conditions on the tenant key may only match the caller's tenant")
		}
		if inner, ok := n["filter"].(map[string]any); ok {
			return x.checkFilter(inner, false, depth+1)
		}
		return nil
	}
	// A Filter used as a condition.
	return x.checkFilter(c, positive, depth+1)
}

func (x *exchange) confineWrite(op string, o map[string]any) error {
	t := x.tenant
	switch op {
	case "points.upsert":
		if pts, ok := o["points"]; ok {
			arr, ok := pts.([]any)
			if !ok {
				return badRequest("points must be an array")
			}
			for _, p := range arr {
				pm, ok := p.(map[string]any)
				if !ok {
					return badRequest("points must hold objects")
				}
				pl, err := x.forcePayload(pm["payload"])
				if err != nil {
					return err
				}
				pm["payload"] = pl
			}
		} else {
			b, ok := o["batch"].(map[string]any)
			if !ok {
				return badRequest("batch must be an object")
			}
			ids, ok := b["ids"].([]any)
			if !ok {
				return badRequest("batch.ids must be an array")
			}
			pls, present := b["payloads"]
			var arr []any
			if present && pls != nil {
				arr, ok = pls.([]any)
				if !ok || len(arr) != len(ids) {
					return badRequest("batch.payloads must be an array as long as batch.ids")
				}
			} else {
				arr = make([]any, len(ids))
			}
			for i := range arr {
				pl, err := x.forcePayload(arr[i])
				if err != nil {
					return err
				}
				arr[i] = pl
			}
			b["payloads"] = arr
		}
		x.apply("tenant_payload")
		x.apply("update_filter")
		return x.wrapFilter(o, "update_filter")
	case "points.vectors.update":
		x.apply("update_filter")
		return x.wrapFilter(o, "update_filter")
	case "points.delete", "points.vectors.delete":
		return x.confineSelector(o)
	case "points.payload.clear":
		return conflict("clearing the payload would remove the tenant key")
	case "points.payload.set":
		if k, ok := o["key"]; ok && k != nil {
			if ks, _ := k.(string); t.touches(ks) || ks == "" {
				return conflict("a write may not change the tenant key")
			}
		}
		pl, ok := o["payload"].(map[string]any)
		if !ok {
			return badRequest("payload must be an object")
		}
		for k, v := range pl {
			if t.touches(k) && !(k == t.Field && t.sameValue(v)) {
				return conflict("a write may not change the tenant key")
			}
		}
		return x.confineSelector(o)
	case "points.payload.overwrite":
		if k, ok := o["key"]; ok && k != nil {
			return conflict("a write may not change the tenant key")
		}
		pl, err := x.forcePayloadMode(o["payload"], true)
		if err != nil {
			return err
		}
		o["payload"] = pl
		x.apply("tenant_payload")
		return x.confineSelector(o)
	case "points.payload.delete":
		keys, ok := o["keys"].([]any)
		if !ok {
			return badRequest("keys must be an array")
		}
		for _, k := range keys {
			ks, ok := k.(string)
			if !ok || t.touches(ks) {
				return conflict("a write may not change the tenant key")
			}
		}
		return x.confineSelector(o)
	}
	return errf(http.StatusForbidden, CodeTenantUnsupported, "request denied")
}

// forcePayload makes an upserted point's payload carry the tenant value.
func (x *exchange) forcePayload(v any) (map[string]any, error) {
	return x.forcePayloadMode(v, x.opt.TenantMissing == TenantMissingSet)
}

func (x *exchange) forcePayloadMode(v any, set bool) (map[string]any, error) {
	t := x.tenant
	var pl map[string]any
	switch p := v.(type) {
	case nil:
		pl = map[string]any{}
	case map[string]any:
		pl = p
	default:
		return nil, badRequest("payload must be an object")
	}
	for k, val := range pl {
		if k != t.Field && t.touches(k) && strings.HasPrefix(k, t.Field) {
			// "tenant_id.x" style keys are plain keys to Qdrant's payload
			// storage, but read back as paths: refuse.
			return nil, conflict("payload keys may not shadow the tenant key")
		}
		if k == t.Field && !t.sameValue(val) {
			return nil, conflict("point carries another tenant's value")
		}
	}
	if _, ok := pl[t.Field]; !ok {
		if !set {
			return nil, errf(http.StatusForbidden, CodeTenantRequired, "request denied: every point must carry the caller's tenant in payload key %s", t.Field)
		}
		pl[t.Field] = t.Value
	}
	return pl, nil
}

// confineSelector turns a points/filter selector into a filter confined to
// the tenant: {"points":[ids]} becomes {"filter":{"must":[tenant,{"has_id":ids}]}}.
func (x *exchange) confineSelector(o map[string]any) error {
	pts, hasP := o["points"]
	f, hasF := o["filter"]
	if hasP && pts == nil {
		hasP = false
	}
	if hasF && f == nil {
		hasF = false
	}
	switch {
	case hasP && hasF:
		return badRequest("give either points or filter, not both")
	case hasP:
		ids, ok := pts.([]any)
		if !ok {
			return badRequest("points must be an array of ids")
		}
		for _, id := range ids {
			if !isID(id) {
				return badRequest("points must be an array of ids")
			}
		}
		delete(o, "points")
		o["filter"] = map[string]any{"must": []any{x.tenant.cond(), map[string]any{"has_id": ids}}}
		x.apply("selector_to_filter")
		return nil
	case hasF:
		x.apply("tenant_filter")
		return x.wrapFilter(o, "filter")
	}
	return badRequest("a points or filter selector is required")
}
