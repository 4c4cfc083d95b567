package gateway

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardenhq/warden/internal/audit"
	"github.com/wardenhq/warden/internal/capture"
	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/guard"
	"github.com/wardenhq/warden/internal/protocol"
)

// newCapture opens the opt-in redacted body capture. It needs the secret
// and PII detectors (config validation refuses the section otherwise) and
// redacts strictly: a body whose scan did not finish is not written, whatever
// guard.fail_mode says about requests.
func newCapture(cc *config.GuardCapture, s *guard.Scanner, log *slog.Logger, reg prometheus.Registerer) (*capture.Writer, error) {
	if s == nil {
		return nil, errors.New("capture needs the detectors (a guard section)")
	}
	return capture.New(capture.Config{
		Path: cc.Path, When: cc.When, Sample: cc.Sample, MaxBodyBytes: cc.MaxBodyBytes, MaxFileBytes: cc.MaxFileBytes,
	}, s.RedactStrict, capture.Options{Logger: log, Registerer: reg})
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
