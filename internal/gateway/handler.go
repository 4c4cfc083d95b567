package gateway

import (
	"compress/flate"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardenhq/warden/internal/audit"
	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/identity"
	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/policy"
	"github.com/wardenhq/warden/internal/protocol"
	"github.com/wardenhq/warden/internal/protocol/generic"
	"github.com/wardenhq/warden/internal/proxy"
)

type connKey struct{}

// CodeRequestTimeout is the reason code for a body that did not arrive
// within timeouts.read_body.
const CodeRequestTimeout = "request_timeout"

// handler serves one data-plane listener. Every request goes through the
// same steps, in this order, and leaves by one of two doors: fail (an
// *protocol.Error, audited when a decision was made) or forward (allowed,
// audited before the first byte goes upstream).
//
//	strip identity claims → refuse upgrades → authenticate (mTLS or JWT-SVID)
//	→ revocation → route → read body (capped, decoded) → protocol parse
//	→ guard scan (guard.go) → policy per call → limits → audit(decision) → forward → response filter
//	→ audit(outcome)
type handler struct {
	g        *Gateway
	lc       *config.Listener
	mtls     bool
	jwt      *identity.JWTVerifier
	tdAccept map[spiffeid.TrustDomain]bool
}

var _ http.Handler = (*handler)(nil)

// reqState is what one request accumulates for its audit records.
type reqState struct {
	id      string
	start   time.Time
	peer    identity.Peer
	route   *route
	kind    string
	bytesIn int64
	upPath  string         // escaped path as forwarded (route prefix stripped)
	guards  map[string]any // input.guards; nil when not scanned
	body    []byte         // the request body as read (for the opt-in capture only)
	query   url.Values     // the strictly parsed query; its Encode() is forwarded
}

// upstreamRequest returns r as the upstream will see it: with the route's
// prefix removed when the route strips it (a shallow copy; r is unchanged).
func upstreamRequest(r *http.Request, rt *route) *http.Request {
	if !rt.strip {
		return r
	}
	p := r.URL.EscapedPath()[len(rt.prefix):]
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	u := *r.URL
	if dec, err := url.PathUnescape(p); err == nil {
		u.Path, u.RawPath = dec, p
		if dec == p {
			u.RawPath = ""
		}
	}
	r2 := *r
	r2.URL = &u
	return &r2
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := h.g
	g.metrics.inflight.Inc()
	defer g.metrics.inflight.Dec()
	st := &reqState{id: g.nextRequestID(), start: g.now()}
	w.Header().Set("X-Request-Id", st.id)

	// Nothing downstream may see a client's claim of identity.
	identity.StripIdentityHeaders(r.Header, g.cfg.IdentityHeader)

	if proxy.IsUpgrade(r) {
		h.reject(w, r, st, protocol.Errorf(http.StatusBadRequest, protocol.CodeUpgradeRefused, "protocol upgrades are not allowed through Warden"))
		return
	}

	peer, perr := h.authenticate(r)
	if perr != nil {
		g.metrics.authFailures.WithLabelValues(h.lc.Name, perr.Code).Inc()
		g.log.LogAttrs(r.Context(), slog.LevelInfo, "unauthenticated request",
			slog.String("listener", h.lc.Name), slog.String("request_id", st.id),
			slog.String("reason", perr.Code), slog.String("remote", r.RemoteAddr), slog.Any("error", perr.Err))
		h.reject(w, r, st, perr)
		return
	}
	st.peer = peer
	id := peer.ID.String()

	// Track before the revocation lookup: a revocation that lands after
	// Lookup is then caught by the kill switch, one before it by Lookup.
	ctx, cancel := context.WithCancel(protocol.WithPeer(r.Context(), id))
	defer cancel()
	untrack := g.killer.track(id, cancel)
	defer untrack()
	if peer.Method == identity.MethodX509 {
		if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
			g.killer.trackConn(id, c)
		}
	}
	r = r.WithContext(ctx)

	if _, revoked, err := g.revs.Lookup(id); err != nil {
		h.deny(w, r, st, nil, generic.Protocol{}, nil, &protocol.Error{Status: http.StatusServiceUnavailable, Code: protocol.CodeRevocationUnknown, Message: "revocation state unavailable", Err: err}, []string{protocol.CodeRevocationUnknown})
		return
	} else if revoked {
		h.deny(w, r, st, nil, generic.Protocol{}, nil, protocol.Errorf(http.StatusForbidden, protocol.CodeRevoked, "identity %s is revoked", id), []string{"identity_revoked"})
		return
	}

	if !canonicalPath(r.URL.EscapedPath()) {
		h.reject(w, r, st, protocol.Errorf(http.StatusBadRequest, protocol.CodeInvalidRequest, "request path is not in canonical form"))
		return
	}
	// The query is parsed strictly once; policy sees the parsed form
	// (input.request.query) and the upstream gets its canonical encoding.
	query, qerr := strictQuery(r.URL.RawQuery)
	if qerr != nil {
		h.reject(w, r, st, protocol.Errorf(http.StatusBadRequest, protocol.CodeInvalidRequest, "malformed query string: %v", qerr))
		return
	}
	r.URL.RawQuery = canonicalQuery(query)
	st.query = query
	rt := g.router.match(h.lc.Name, r.Host, r.URL.Path)
	if rt == nil {
		h.deny(w, r, st, nil, generic.Protocol{}, nil, protocol.Errorf(http.StatusNotFound, protocol.CodeUnknownRoute, "no route for %s", r.URL.Path), []string{"unknown_route"})
		return
	}
	st.route = rt
	st.kind = rt.backend.proto.Name()
	proto := rt.backend.proto
	// The protocol classifies exactly the path the upstream will see.
	up := upstreamRequest(r, rt)
	st.upPath = up.URL.EscapedPath()

	body, berr := h.readBody(w, r)
	if berr != nil {
		// Never drain a body that could not be read (too large, too slow,
		// malformed) and never reuse the connection: a slow client would
		// otherwise hold it open, and net/http does not re-apply
		// MaxHeaderBytes to the next request on it after a handler left a
		// large body unread (seen on Go 1.26).
		w.Header().Set("Connection", "close")
		h.deny(w, r, st, nil, proto, nil, berr, []string{berr.Code})
		return
	}
	st.bytesIn = int64(len(body))
	st.body = body

	x, err := proto.Parse(ctx, &protocol.Request{HTTP: up, Body: body, Backend: rt.backend.cfg.Name, Guard: g.pguard})
	if err != nil {
		pe := protocol.AsError(err)
		h.deny(w, r, st, nil, proto, nil, pe, []string{pe.Code})
		return
	}
	calls := x.Calls()
	if len(calls) == 0 {
		h.deny(w, r, st, x, proto, nil, protocol.Errorf(http.StatusForbidden, protocol.CodePolicyDenied, "request denied"), []string{"no_calls"})
		return
	}

	if _, gerr := h.scanRequest(ctx, st, body, calls); gerr != nil {
		h.deny(w, r, st, x, proto, nil, gerr, []string{protocol.CodeGuardBlocked + ":over_budget"})
		return
	}

	subject := subjectOf(peer)
	reqIn := requestOf(r, st.query)
	decisions, err := h.decide(ctx, st, subject, reqIn, calls)
	if err != nil {
		g.log.LogAttrs(ctx, slog.LevelError, "policy evaluation failed; denying",
			slog.String("request_id", st.id), slog.String("spiffe_id", id), slog.Any("error", err))
		h.deny(w, r, st, x, proto, decisions, &protocol.Error{Status: http.StatusForbidden, Code: protocol.CodePolicyError, Message: "request denied: policy could not be evaluated", Err: err}, reasonsOf(decisions, "policy_error"))
		return
	}
	allowed := false
	for _, d := range decisions {
		if d.Allow {
			allowed = true
			break
		}
	}
	if !allowed {
		code := protocol.CodePolicyDenied
		if guardDenied(decisions) {
			code = protocol.CodeGuardBlocked
		}
		h.deny(w, r, st, x, proto, decisions, protocol.Errorf(http.StatusForbidden, code, "request denied by policy"), reasonsOf(decisions, "denied"))
		return
	}

	env := &protocol.ResponseEnv{Authorize: h.authorizer(subject, reqIn, rt)}
	lim, lerr := g.admit(ctx, st, calls, decisions)
	if lerr != nil {
		for k, v := range lerr.headers {
			w.Header()[k] = v
		}
		g.metrics.limited.WithLabelValues(lerr.err.Code).Inc()
		reasons := []string{lerr.err.Code}
		if lerr.degraded != "" {
			reasons = append(reasons, lerr.degraded)
		}
		h.deny(w, r, st, x, proto, decisions, lerr.err, reasons)
		return
	}
	if lim != nil {
		env.Meter = lim
		defer lim.Release()
		for k, v := range lim.Headers() {
			w.Header()[k] = v
		}
	}

	out, err := x.Forward(ctx, decisions)
	if err != nil {
		pe := protocol.AsError(err)
		h.deny(w, r, st, x, proto, decisions, pe, []string{pe.Code})
		return
	}

	rec := h.record(st, "decision", calls, decisions)
	rec.Decision = "allow"
	rec.Reasons = reasonsOf(decisions, "allowed")
	rec.Protocol = withGuards(st, nil)
	if lim != nil && lim.Degraded() != "" {
		// Admitted by this replica's local counters while Redis was down.
		rec.Reasons = append(rec.Reasons, lim.Degraded())
	}
	if err := g.audit.Append(ctx, rec); err != nil {
		g.log.LogAttrs(ctx, slog.LevelError, "audit write failed; refusing to forward",
			slog.String("request_id", st.id), slog.Any("error", err))
		h.fail(w, r, st, proto, &protocol.Error{Status: http.StatusServiceUnavailable, Code: protocol.CodeAuditUnavailable, Message: "audit log unavailable", Err: err}, "allow")
		return
	}
	g.metrics.decision.WithLabelValues(rt.name).Observe(g.now().Sub(st.start).Seconds())

	h.offerCapture(r, st, rec)
	g.metrics.observeRequestGuard(st.guards, false)
	h.forward(w, r, st, x, proto, out, env, calls, decisions)
	if lim != nil {
		lim.Settle(ctx, usage(x.Audit()))
	}
}

// authenticate returns the caller's verified identity: from the verified
// client certificate of this connection (re-verified on resumption by the
// TLS config), or from a JWT-SVID on listeners that accept one.
func (h *handler) authenticate(r *http.Request) (identity.Peer, *protocol.Error) {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		p, err := identity.PeerFromTLS(r.TLS)
		if err != nil {
			return identity.Peer{}, &protocol.Error{Status: http.StatusUnauthorized, Code: protocol.CodeUnauthenticated, Message: "client certificate is not a valid X.509-SVID", Err: err}
		}
		if !h.tdAccept[p.ID.TrustDomain()] {
			return identity.Peer{}, &protocol.Error{Status: http.StatusUnauthorized, Code: protocol.CodeUnauthenticated, Message: "trust domain not accepted on this listener", Err: errors.New(p.ID.String())}
		}
		// A kept-alive connection can outlive the certificate it was opened with.
		if p.Expired(h.g.now()) {
			return identity.Peer{}, &protocol.Error{Status: http.StatusUnauthorized, Code: protocol.CodeUnauthenticated, Message: "client X.509-SVID has expired; reconnect with a current one", Err: identity.ErrExpired}
		}
		return p, nil
	}
	if h.jwt != nil && r.Header.Get("Authorization") != "" {
		p, err := h.jwt.FromRequest(r)
		// The bearer token is Warden's credential, never the upstream's.
		r.Header.Del("Authorization")
		if err != nil {
			return identity.Peer{}, &protocol.Error{Status: http.StatusUnauthorized, Code: protocol.CodeUnauthenticated, Message: "invalid JWT-SVID", Err: err}
		}
		return p, nil
	}
	return identity.Peer{}, protocol.Errorf(http.StatusUnauthorized, protocol.CodeUnauthenticated, "a client X.509-SVID or JWT-SVID is required")
}

// readBody reads the request body under the size cap and read deadline,
// decoding gzip/deflate with the same cap; other encodings are refused.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *protocol.Error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 && len(r.TransferEncoding) == 0 {
		return nil, nil
	}
	max := h.g.cfg.Limits.MaxBodyBytes
	tooBig := protocol.Errorf(http.StatusRequestEntityTooLarge, protocol.CodeBodyTooLarge, "request body exceeds %d bytes", max)
	if r.ContentLength > max {
		return nil, tooBig
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(h.g.now().Add(h.g.cfg.Timeouts.ReadBody))
	// The deadline is cleared only after a complete read: on an error path it
	// stays, so net/http's attempt to drain the rest fails fast and the
	// connection closes instead of waiting on a slow client.

	var src io.Reader = http.MaxBytesReader(w, r.Body, max)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, &protocol.Error{Status: http.StatusBadRequest, Code: protocol.CodeInvalidRequest, Message: "malformed gzip body", Err: err}
		}
		defer zr.Close()
		src = zr
	case "deflate":
		fr := flate.NewReader(src)
		defer fr.Close()
		src = fr
	default:
		return nil, protocol.Errorf(http.StatusUnsupportedMediaType, protocol.CodeUnsupportedMedia, "content encoding %q is not supported", enc)
	}
	n := r.ContentLength
	if n < 0 || n > max {
		n = 512
	}
	buf := make([]byte, 0, n+1)
	for {
		if int64(len(buf)) > max {
			return nil, tooBig
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		m, err := src.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err == io.EOF {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, tooBig
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, &protocol.Error{Status: http.StatusRequestTimeout, Code: CodeRequestTimeout, Message: "request body not received in time", Err: err}
			}
			return nil, &protocol.Error{Status: http.StatusBadRequest, Code: protocol.CodeInvalidRequest, Message: "could not read request body", Err: err}
		}
	}
	if int64(len(buf)) > max {
		return nil, tooBig
	}
	_ = rc.SetReadDeadline(time.Time{})
	return buf, nil
}

func subjectOf(p identity.Peer) policy.Subject {
	return policy.Subject{
		SpiffeID:    p.ID.String(),
		TrustDomain: p.ID.TrustDomain().Name(),
		Path:        p.ID.Path(),
		AuthMethod:  authMethod(p.Method),
	}
}

// authMethod names how a caller authenticated in the terms of the listener
// config ("mtls", "jwt"), which is also what policy and audit see.
func authMethod(m string) string {
	if m == identity.MethodJWT {
		return "jwt"
	}
	return "mtls"
}

// policyHeaders are the request headers policy may see. Authorization and
// cookies never are.
var policyHeaders = []string{"Content-Type", "User-Agent", "Accept", "Mcp-Protocol-Version"}

func requestOf(r *http.Request, query url.Values) policy.Request {
	hs := make(map[string]string, len(policyHeaders))
	for _, k := range policyHeaders {
		if v := r.Header.Get(k); v != "" {
			hs[strings.ToLower(k)] = v
		}
	}
	return policy.Request{Method: r.Method, Path: r.URL.Path, Host: r.Host, Headers: hs, Query: query}
}

func (h *handler) input(subject policy.Subject, req policy.Request, rt *route, c protocol.Call) *policy.Input {
	res := make(map[string]any, len(c.Resource)+3)
	for k, v := range c.Resource {
		res[k] = v
	}
	res["kind"] = rt.backend.proto.Name()
	res["backend"] = rt.backend.cfg.Name
	res["route"] = rt.name
	return &policy.Input{
		Subject:   subject,
		Request:   req,
		Resource:  res,
		Action:    c.Action,
		Operation: c.Operation,
		Time:      h.g.now(),
	}
}

// decide evaluates every call; an error means deny (the decisions carry the
// engine's fail-closed reasons).
func (h *handler) decide(ctx context.Context, st *reqState, subject policy.Subject, req policy.Request, calls []protocol.Call) ([]protocol.Decision, error) {
	if len(calls) == 1 {
		in := h.input(subject, req, st.route, calls[0])
		in.Guards = st.guards
		d, err := h.g.policy.Decide(ctx, in)
		return []protocol.Decision{d}, err
	}
	ins := make([]*policy.Input, len(calls))
	for i, c := range calls {
		ins[i] = h.input(subject, req, st.route, c)
		ins[i].Guards = st.guards
	}
	ds, err := h.g.policy.DecideMany(ctx, ins)
	if err == nil && len(ds) != len(calls) {
		err = errors.New("policy returned fewer decisions than calls")
	}
	return ds, err
}

// authorizer lets a protocol ask policy about response-path calls.
func (h *handler) authorizer(subject policy.Subject, req policy.Request, rt *route) protocol.Authorizer {
	return func(ctx context.Context, calls []protocol.Call) ([]protocol.Decision, error) {
		ins := make([]*policy.Input, len(calls))
		for i, c := range calls {
			ins[i] = h.input(subject, req, rt, c)
			// A response-path call carries the verdict on the text it would
			// let through (a tool result, a retrieved point).
			ins[i].Guards = c.Guards
		}
		ds, err := h.g.policy.DecideMany(ctx, ins)
		if err == nil && len(ds) != len(calls) {
			return nil, errors.New("policy returned fewer decisions than calls")
		}
		return ds, err
	}
}

func reasonsOf(ds []protocol.Decision, fallback string) []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range ds {
		for _, r := range d.Reasons {
			if !seen[r] {
				seen[r] = true
				out = append(out, r)
			}
		}
	}
	if len(out) == 0 {
		out = []string{fallback}
	}
	return out
}

// record builds the audit record common to both events of a request.
func (h *handler) record(st *reqState, event string, calls []protocol.Call, ds []protocol.Decision) *audit.Record {
	rec := &audit.Record{
		Time:      h.g.now(),
		Event:     event,
		RequestID: st.id,
		Listener:  h.lc.Name,
	}
	if !st.peer.ID.IsZero() {
		rec.SpiffeID = st.peer.ID.String()
		rec.AuthMethod = authMethod(st.peer.Method)
	}
	if st.route != nil {
		rec.Route = st.route.name
		rec.Backend = st.route.backend.cfg.Name
		rec.Kind = st.kind
	}
	if len(calls) > 0 {
		rec.Action = calls[0].Action
		rec.Operation = calls[0].Operation
		rec.Resource = auditResource(calls[0].Resource)
		if len(calls) > 1 {
			rec.Resource["calls"] = len(calls)
		}
	}
	for _, d := range ds {
		for k := range d.Obligations {
			rec.Obligations = append(rec.Obligations, k)
		}
	}
	return rec
}

// auditResource keeps what is safe to record: scalars and short lists of
// scalars. Structured values (tool arguments, filters) are recorded as size
// and hash only, never their content.
func auditResource(res map[string]any) map[string]any {
	out := make(map[string]any, len(res))
	for k, v := range res {
		switch t := v.(type) {
		case nil, bool, string, int, int64, float64, jsonstrict.Number:
			if s, ok := t.(string); ok && len(s) > 512 {
				out[k] = s[:512]
				continue
			}
			out[k] = v
		case []string:
			if len(t) <= 64 {
				out[k] = t
			}
		case []any:
			if len(t) <= 64 && allScalars(t) {
				out[k] = t
				continue
			}
			out[k] = digest(v)
		default:
			if s, ok := v.(interface{ String() string }); ok {
				out[k] = s.String()
				continue
			}
			out[k] = digest(v)
		}
	}
	return out
}

func allScalars(vs []any) bool {
	for _, v := range vs {
		switch v.(type) {
		case nil, bool, string, int, int64, float64, jsonstrict.Number:
		default:
			return false
		}
	}
	return true
}

// digest summarizes a structured value by its canonical size and hash.
func digest(v any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		return map[string]any{"unencodable": true}
	}
	sum := sha256.Sum256(b)
	return map[string]any{"bytes": len(b), "sha256": hex.EncodeToString(sum[:])}
}

// deny audits a refusal (a decision was made: policy, revocation, route,
// parse) and answers in the protocol's format. If the audit write fails the
// answer is 503: still a refusal, and the operator sees it as an audit fault.
func (h *handler) deny(w http.ResponseWriter, r *http.Request, st *reqState, x protocol.Exchange, proto protocol.Protocol, ds []protocol.Decision, e *protocol.Error, reasons []string) {
	var calls []protocol.Call
	if x != nil {
		calls = x.Calls()
	}
	rec := h.record(st, "decision", calls, ds)
	rec.Decision = "deny"
	rec.Reasons = reasons
	rec.Status = e.Status
	rec.BytesIn = st.bytesIn
	rec.LatencyMS = ms(h.g.now().Sub(st.start))
	if e.Err != nil {
		rec.Error = e.Code
	}
	if x != nil {
		rec.Protocol = withGuards(st, x.Audit())
	}
	h.offerCapture(r, st, rec)
	guardRefused := false
	for _, rs := range reasons {
		guardRefused = guardRefused || strings.HasPrefix(rs, protocol.CodeGuardBlocked)
	}
	h.g.metrics.observeRequestGuard(st.guards, guardRefused)
	if err := h.g.audit.Append(r.Context(), rec); err != nil {
		h.g.log.LogAttrs(r.Context(), slog.LevelError, "audit write failed for a denial",
			slog.String("request_id", st.id), slog.Any("error", err))
		e = &protocol.Error{Status: http.StatusServiceUnavailable, Code: protocol.CodeAuditUnavailable, Message: "audit log unavailable", Err: err}
	}
	h.fail(w, r, st, proto, e, "deny")
}

// reject answers a request that was refused before any identity was
// established (unauthenticated, upgrade). It is counted, logged and audited.
func (h *handler) reject(w http.ResponseWriter, r *http.Request, st *reqState, e *protocol.Error) {
	h.deny(w, r, st, nil, generic.Protocol{}, nil, e, []string{e.Code})
}

// fail is the one place a refusal becomes an HTTP response.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, st *reqState, proto protocol.Protocol, e *protocol.Error, decision string) {
	routeName := ""
	if st.route != nil {
		routeName = st.route.name
	}
	h.g.metrics.requests.WithLabelValues(h.lc.Name, routeName, decision, statusLabel(e.Status)).Inc()
	if e.Status == protocol.StatusClientClosedRequest {
		return
	}
	if e.Status == http.StatusUnauthorized && h.jwt != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="warden"`)
	}
	proto.WriteError(w, r, e)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
