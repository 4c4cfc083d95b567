package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardenhq/warden/internal/audit"
	"github.com/wardenhq/warden/internal/capture"
	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/protocol"
)

// newCapture opens the opt-in redacted body capture. It needs the guard:
// bodies are never written unredacted.
func newCapture(cc *config.GuardCapture, g protocol.Guard, log *slog.Logger, reg prometheus.Registerer) (*capture.Writer, error) {
	if g == nil {
		return nil, errors.New("capture needs the detectors on (a guard section without every category disabled)")
	}
	redact := func(ctx context.Context, text string) (string, []string, bool) {
		return g.Redact(ctx, protocol.GuardUser, text)
	}
	return capture.New(capture.Config{
		Path: cc.Path, When: cc.When, Sample: cc.Sample, MaxBodyBytes: cc.MaxBodyBytes, MaxFileBytes: cc.MaxFileBytes,
	}, redact, capture.Options{Logger: log, Registerer: reg})
}

// offerCapture hands a decided request to the capture (a no-op when it is
// off). Flagged means a detector found something in the request or a guard
// refused it.
func (h *handler) offerCapture(r *http.Request, st *reqState, rec *audit.Record) {
	if h.g.capture == nil || len(st.body) == 0 {
		return
	}
	flagged := false
	if cats, ok := st.guards["categories"].(map[string]any); ok && len(cats) > 0 {
		flagged = true
	}
	if st.guards["blocked"] == true {
		flagged = true
	}
	for _, rs := range rec.Reasons {
		if strings.HasPrefix(rs, protocol.CodeGuardBlocked) {
			flagged = true
		}
	}
	it := capture.Item{
		Time: rec.Time, RequestID: st.id, SpiffeID: rec.SpiffeID, Method: r.Method, Path: st.upPath,
		ContentType: r.Header.Get("Content-Type"), Decision: rec.Decision, Reasons: rec.Reasons,
		Guards: st.guards, Flagged: flagged, Body: st.body,
	}
	if st.route != nil {
		it.Route = st.route.name
		it.Backend = st.route.backend.cfg.Name
	}
	h.g.capture.Offer(it)
}
