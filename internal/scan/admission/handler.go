package admission

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wardenhq/warden/internal/scan"
)

// Limits on what goes back to the API server: kubectl prints every warning,
// and audit annotations end up in the audit log.
const (
	maxWarnings      = 20
	maxWarningLength = 240
	maxDenyMessage   = 2048
)

// Handler answers AdmissionReview v1 requests. It is an http.Handler so it
// can be mounted on any TLS server; Server wraps it with one.
type Handler struct {
	scanner   *scan.Scanner
	cfg       *Config
	threshold scan.Severity
	log       *slog.Logger
	now       func() time.Time

	duration *prometheus.HistogramVec
	reviews  *prometheus.CounterVec
	findings *prometheus.CounterVec
}

var _ http.Handler = (*Handler)(nil)

// NewHandler builds a handler around a prepared Scanner; reg receives the
// metrics (nil: not registered). log may be nil.
func NewHandler(s *scan.Scanner, cfg *Config, log *slog.Logger, reg prometheus.Registerer) (*Handler, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	th, err := scan.ParseSeverity(cfg.Threshold)
	if err != nil {
		return nil, fmt.Errorf("admission: threshold: %w", err)
	}
	h := &Handler{scanner: s, cfg: cfg, threshold: th, log: log, now: time.Now,
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "warden_admission_review_duration_seconds",
			Help:    "Time to evaluate one AdmissionReview, from request read to response written.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"mode", "allowed"}),
		reviews: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_admission_reviews_total",
			Help: "AdmissionReviews answered, by mode and decision.",
		}, []string{"mode", "decision"}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_admission_findings_total",
			Help: "Unsuppressed findings seen at admission, by rule and severity.",
		}, []string{"rule", "severity"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{h.duration, h.reviews, h.findings} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("admission: metrics: %w", err)
			}
		}
	}
	return h, nil
}

// ServeHTTP decodes an AdmissionReview, evaluates the object and answers.
// Malformed requests get 400 (the API server then applies the webhook's
// failurePolicy).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.now()
	if r.Method != http.MethodPost {
		http.Error(w, "POST an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		http.Error(w, "Content-Type must be application/json", http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxRequestBytes))
	if err != nil {
		http.Error(w, "request body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(w, "body is not an AdmissionReview with a request", http.StatusBadRequest)
		return
	}
	req := review.Request
	mode := h.cfg.mode(req.Namespace)
	resp := h.review(r, req, mode)
	resp.UID = req.UID
	out := admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Response: resp}
	b, err := json.Marshal(out)
	if err != nil {
		http.Error(w, "encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
	decision := "allow"
	if !resp.Allowed {
		decision = "deny"
	} else if len(resp.Warnings) > 0 {
		decision = "warn"
	}
	h.reviews.WithLabelValues(string(mode), decision).Inc()
	h.duration.WithLabelValues(string(mode), fmt.Sprint(resp.Allowed)).Observe(h.now().Sub(start).Seconds())
}

func (h *Handler) review(r *http.Request, req *admissionv1.AdmissionRequest, mode Mode) *admissionv1.AdmissionResponse {
	allow := &admissionv1.AdmissionResponse{Allowed: true}
	if mode == ModeOff || req.Operation == admissionv1.Delete || req.Operation == admissionv1.Connect || len(req.Object.Raw) == 0 {
		return allow
	}
	var obj map[string]any
	if err := json.Unmarshal(req.Object.Raw, &obj); err != nil {
		h.log.Warn("admission: undecodable object", "uid", req.UID, "err", err)
		return &admissionv1.AdmissionResponse{Allowed: mode != ModeEnforce,
			Result: &metav1.Status{Code: http.StatusBadRequest, Message: "warden: object is not valid JSON"}}
	}
	if req.Namespace != "" {
		md, _ := obj["metadata"].(map[string]any)
		if md == nil {
			md = map[string]any{}
			obj["metadata"] = md
		}
		if _, ok := md["namespace"]; !ok {
			md["namespace"] = req.Namespace
		}
	}
	name := fmt.Sprintf("admission:%s/%s/%s", req.Kind.Kind, req.Namespace, req.Name)
	res := h.scanner.EvaluateObject(r.Context(), obj, name)
	for _, e := range res.Errors {
		h.log.Warn("admission: input error", "uid", req.UID, "err", e.Err)
	}
	var blocking, advisory []scan.Finding
	for _, f := range res.Findings {
		if f.Suppressed {
			continue
		}
		h.findings.WithLabelValues(f.RuleID, f.Severity.String()).Inc()
		if f.Severity >= h.threshold {
			blocking = append(blocking, f)
		} else {
			advisory = append(advisory, f)
		}
	}
	if len(blocking) > 0 {
		h.log.Info("admission: findings", "uid", req.UID, "kind", req.Kind.Kind, "namespace", req.Namespace,
			"name", req.Name, "mode", string(mode), "findings", ruleIDs(blocking))
	}
	resp := &admissionv1.AdmissionResponse{Allowed: true}
	switch mode {
	case ModeEnforce:
		if len(blocking) > 0 {
			resp.Allowed = false
			resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusForbidden,
				Reason: metav1.StatusReasonForbidden, Message: denyMessage(blocking)}
		}
		resp.Warnings = warnings(advisory)
	case ModeWarn:
		resp.Warnings = warnings(append(blocking, advisory...))
	case ModeAudit:
		if len(blocking) > 0 {
			resp.AuditAnnotations = map[string]string{
				"findings": strings.Join(ruleIDs(blocking), ","),
				"mode":     string(mode),
			}
		}
	}
	return resp
}

func ruleIDs(fs []scan.Finding) []string {
	out := make([]string, 0, len(fs))
	seen := map[string]bool{}
	for _, f := range fs {
		if !seen[f.RuleID] {
			seen[f.RuleID] = true
			out = append(out, f.RuleID)
		}
	}
	return out
}

func denyMessage(fs []scan.Finding) string {
	var b strings.Builder
	fmt.Fprintf(&b, "warden: denied by %d finding(s):", len(fs))
	for _, f := range fs {
		s := fmt.Sprintf(" [%s %s] %s;", f.RuleID, f.Severity, f.Message)
		if b.Len()+len(s) > maxDenyMessage {
			b.WriteString(" …")
			break
		}
		b.WriteString(s)
	}
	return strings.TrimSuffix(b.String(), ";")
}

func warnings(fs []scan.Finding) []string {
	var out []string
	for i, f := range fs {
		if i == maxWarnings {
			out = append(out, fmt.Sprintf("warden: %d more finding(s) not shown", len(fs)-i))
			break
		}
		w := fmt.Sprintf("warden %s (%s): %s", f.RuleID, f.Severity, f.Message)
		if len(w) > maxWarningLength {
			w = strings.ToValidUTF8(w[:maxWarningLength-3], "") + "..."
		}
		out = append(out, w)
	}
	return out
}
