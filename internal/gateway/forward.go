package gateway

import (
	"context"
	"log/slog"
	"net"
	"net/http"

	"github.com/wardenhq/warden/internal/protocol"
	"github.com/wardenhq/warden/internal/proxy"
)

type roundTripper interface {
	RoundTrip(*http.Request) (*http.Response, error)
}

// forward sends the authorized bytes upstream, lets the protocol filter the
// response, streams it back, and writes the outcome record.
func (h *handler) forward(w http.ResponseWriter, r *http.Request, st *reqState, x protocol.Exchange, proto protocol.Protocol, body []byte, env *protocol.ResponseEnv, calls []protocol.Call, ds []protocol.Decision) {
	g := h.g
	rt := st.route
	ctx := r.Context()
	if g.cfg.Timeouts.Stream > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.cfg.Timeouts.Stream)
		defer cancel()
	}
	path := st.upPath
	clientIP, _, _ := net.SplitHostPort(r.RemoteAddr)
	out, err := proxy.NewRequest(ctx, &proxy.Outbound{
		Base:        rt.backend.base,
		Path:        path,
		RawQuery:    canonicalQuery(st.query), // the canonical form policy saw
		Method:      r.Method,
		Header:      r.Header,
		Body:        body,
		IdentityKey: g.cfg.IdentityHeader,
		Identity:    st.peer.ID.String(),
		RequestID:   st.id,
		ClientIP:    clientIP,
		Inspect:     st.kind != "http",
	})
	if err != nil {
		h.outcome(r, st, x, calls, ds, http.StatusBadGateway, 0, err)
		h.fail(w, r, st, proto, &protocol.Error{Status: http.StatusBadGateway, Code: protocol.CodeUpstreamError, Message: "upstream request could not be built", Err: err}, "allow")
		return
	}

	resp, err := rt.backend.rt.RoundTrip(out)
	if err != nil {
		pe := proxy.UpstreamError(ctx, err)
		g.metrics.upstream.WithLabelValues(rt.backend.cfg.Name, pe.Code).Inc()
		g.log.LogAttrs(ctx, slog.LevelWarn, "upstream request failed",
			slog.String("request_id", st.id), slog.String("backend", rt.backend.cfg.Name), slog.Any("error", err))
		h.outcome(r, st, x, calls, ds, pe.Status, 0, err)
		h.fail(w, r, st, proto, pe, "allow")
		return
	}
	defer resp.Body.Close()

	if err := x.Response(ctx, resp, env); err != nil {
		pe := protocol.AsError(err)
		h.outcome(r, st, x, calls, ds, pe.Status, 0, err)
		h.fail(w, r, st, proto, pe, "allow")
		return
	}

	stream := proxy.IsStream(resp)
	rc := http.NewResponseController(w)
	if stream {
		_ = rc.SetWriteDeadline(g.now().Add(g.cfg.Timeouts.Stream))
	} else {
		_ = rc.SetWriteDeadline(g.now().Add(g.cfg.Timeouts.Write))
	}
	proxy.CopyHeader(w.Header(), resp.Header)
	w.Header().Set("X-Request-Id", st.id)
	w.WriteHeader(resp.StatusCode)
	n, readErr, writeErr := proxy.Copy(w, resp.Body, stream)
	// Close before the outcome: a filtering body does its final accounting
	// (a client that went away, a cut-off) on Close.
	_ = resp.Body.Close()
	status := resp.StatusCode
	var cause error
	switch {
	case writeErr != nil:
		cause = writeErr
		status = protocol.StatusClientClosedRequest
	case readErr != nil:
		cause = readErr
		if r.Context().Err() != nil && g.isRevoked(st.peer.ID.String()) {
			g.metrics.killed.WithLabelValues("stream").Inc()
		}
		// The status line is already sent: abort the response so the
		// client sees a broken stream, not a clean end.
		defer panicAbort()
	}
	h.outcome(r, st, x, calls, ds, status, n, cause)
	g.metrics.requests.WithLabelValues(h.lc.Name, rt.name, "allow", statusLabel(status)).Inc()
	g.metrics.duration.WithLabelValues(h.lc.Name, rt.name).Observe(g.now().Sub(st.start).Seconds())
}

// panicAbort makes net/http drop the connection (HTTP/1) or reset the
// stream (HTTP/2) without logging a stack trace.
func panicAbort() { panic(http.ErrAbortHandler) }

// outcome writes the second audit record of an allowed request.
func (h *handler) outcome(r *http.Request, st *reqState, x protocol.Exchange, calls []protocol.Call, ds []protocol.Decision, status int, bytesOut int64, cause error) {
	rec := h.record(st, "outcome", calls, ds)
	rec.Decision = "allow"
	rec.Status = status
	rec.BytesIn = st.bytesIn
	rec.BytesOut = bytesOut
	rec.LatencyMS = ms(h.g.now().Sub(st.start))
	rec.Protocol = x.Audit()
	h.g.metrics.observeProtocol(rec.SpiffeID, rec.Protocol)
	if cause != nil {
		rec.Error = classify(cause)
	}
	// The request context may be cancelled (client gone, kill switch): the
	// outcome must still be written.
	if err := h.g.audit.Append(context.WithoutCancel(r.Context()), rec); err != nil {
		h.g.log.LogAttrs(r.Context(), slog.LevelError, "audit write failed for an outcome",
			slog.String("request_id", st.id), slog.Any("error", err))
	}
}

// classify turns an error into a short, secret-free label for the audit log.
func classify(err error) string {
	pe := proxy.UpstreamError(context.Background(), err)
	if pe.Code == protocol.CodeUpstreamError {
		if err == context.Canceled {
			return protocol.CodeClientClosed
		}
	}
	return pe.Code
}

func (g *Gateway) isRevoked(id string) bool {
	_, ok, _ := g.revs.Lookup(id)
	return ok
}
