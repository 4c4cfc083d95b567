// Package capture writes an opt-in, sampled, redacted copy of request
// bodies for investigation: what an agent actually sent when a detector
// fired. It is the one place Warden writes a body, so it is built to fail
// safe:
//
//   - nothing is written unless an operator configured guard.capture;
//   - every body is redacted (secrets and personal data, by the gateway's
//     detectors) before it is written, string by string for JSON bodies so an
//     escaped secret cannot slip past a scan of the raw text; a body that
//     cannot be redacted within the scan budget is not written at all;
//   - redaction and writing happen on one background goroutine behind a
//     bounded queue: a request never waits on the capture file, and a full
//     queue drops the capture (counted), never the request;
//   - the file is created 0600 and capped in size.
//
// Records link to the audit log through request_id; they are not part of
// the tamper-evident chain.
package capture

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sort"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// Redactor replaces secrets and personal data in text. ok false means the
// text could not be fully scanned: the body is then not written.
// protocol.Guard's Redact, bound to a context, has this shape.
type Redactor func(ctx context.Context, text string) (out string, rules []string, ok bool)

// Config is the capture configuration (config.GuardCapture, defaulted).
type Config struct {
	Path string
	// When is "flagged" (only items with Flagged set) or "all".
	When string
	// Sample is the fraction of eligible items kept, in (0, 1].
	Sample       float64
	MaxBodyBytes int
	MaxFileBytes int64
}

// Options are the writer's collaborators. Zero values are fine.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Rand returns a float in [0, 1) for sampling. Default math/rand/v2.
	Rand func() float64
	// Timeout bounds the redaction of one body. Default 2s.
	Timeout time.Duration
	// Queue is the number of captures waiting to be written. Default 64.
	Queue int
}

// Item is one request offered for capture. Body is copied by Offer only
// when the item is kept.
type Item struct {
	Time        time.Time
	RequestID   string
	SpiffeID    string
	Route       string
	Backend     string
	Method      string
	Path        string
	ContentType string
	Decision    string
	Reasons     []string
	// Guards is the request's guard verdict (rule ids and counts).
	Guards map[string]any
	// Flagged: a detector found something, or a guard refused the request.
	Flagged bool
	Body    []byte
}

// record is the line written.
type record struct {
	Time        time.Time      `json:"time"`
	RequestID   string         `json:"request_id"`
	SpiffeID    string         `json:"spiffe_id,omitempty"`
	Route       string         `json:"route,omitempty"`
	Backend     string         `json:"backend,omitempty"`
	Method      string         `json:"method"`
	Path        string         `json:"path"`
	ContentType string         `json:"content_type,omitempty"`
	Decision    string         `json:"decision"`
	Reasons     []string       `json:"reasons,omitempty"`
	Guards      map[string]any `json:"guards,omitempty"`
	// Body is the redacted body as text (a JSON body stays JSON text).
	Body      string   `json:"body"`
	BodyBytes int      `json:"body_bytes"`
	Truncated bool     `json:"truncated,omitempty"`
	Redacted  []string `json:"redacted,omitempty"`
}

// Results counted in warden_guard_capture_total.
const (
	ResultWritten      = "written"
	ResultSampledOut   = "sampled_out"
	ResultDropped      = "dropped"
	ResultUnredactable = "unredactable"
	ResultFileFull     = "file_full"
	ResultError        = "error"
)

// Writer is the capture sink. Offer is safe for concurrent use.
type Writer struct {
	cfg    Config
	redact Redactor
	log    *slog.Logger
	rand   func() float64
	tmo    time.Duration
	count  *prometheus.CounterVec

	q    chan Item
	done chan struct{}

	mu     sync.Mutex // guards closed
	closed bool

	f    *os.File
	size int64
}

// New opens (or appends to) cfg.Path and starts the writer goroutine.
func New(cfg Config, redact Redactor, o Options) (*Writer, error) {
	if redact == nil {
		return nil, errors.New("capture: a redactor is required: bodies are never written unredacted")
	}
	if cfg.Sample <= 0 || cfg.Sample > 1 {
		return nil, fmt.Errorf("capture: sample %v not in (0, 1]", cfg.Sample)
	}
	f, err := os.OpenFile(cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("capture: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		f.Close()
		return nil, fmt.Errorf("capture: %s is readable by others (mode %v); chmod 600 it", cfg.Path, st.Mode().Perm())
	}
	w := &Writer{cfg: cfg, redact: redact, log: o.Logger, rand: o.Rand, tmo: o.Timeout, f: f, size: st.Size()}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.rand == nil {
		w.rand = rand.Float64
	}
	if w.tmo == 0 {
		w.tmo = 2 * time.Second
	}
	n := o.Queue
	if n == 0 {
		n = 64
	}
	w.q = make(chan Item, n)
	w.done = make(chan struct{})
	w.count = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "warden_guard_capture_total",
		Help: "Request bodies offered to the redacted capture, by result.",
	}, []string{"result"})
	if o.Registerer != nil {
		if err := o.Registerer.Register(w.count); err != nil {
			f.Close()
			return nil, fmt.Errorf("capture: metrics: %w", err)
		}
	}
	go w.run()
	return w, nil
}

// Offer considers it for capture: eligible (flagged, or When "all"),
// sampled, then queued. It never blocks.
func (w *Writer) Offer(it Item) {
	if w == nil || len(it.Body) == 0 {
		return
	}
	if w.cfg.When != "all" && !it.Flagged {
		return
	}
	if w.cfg.Sample < 1 && w.rand() >= w.cfg.Sample {
		w.count.WithLabelValues(ResultSampledOut).Inc()
		return
	}
	it.Body = bytes.Clone(it.Body)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	select {
	case w.q <- it:
	default:
		w.count.WithLabelValues(ResultDropped).Inc()
	}
}

// Close writes what is queued and closes the file.
func (w *Writer) Close() error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	close(w.q)
	w.mu.Unlock()
	<-w.done
	return w.f.Close()
}

func (w *Writer) run() {
	defer close(w.done)
	for it := range w.q {
		w.count.WithLabelValues(w.write(it)).Inc()
	}
}

func (w *Writer) write(it Item) string {
	if w.size >= w.cfg.MaxFileBytes {
		return ResultFileFull
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.tmo)
	defer cancel()
	body, rules, ok := redactBody(ctx, it.Body, w.redact)
	if !ok {
		w.log.Warn("capture: body could not be redacted within budget; not written", "request_id", it.RequestID)
		return ResultUnredactable
	}
	rec := record{
		Time: it.Time.UTC(), RequestID: it.RequestID, SpiffeID: it.SpiffeID, Route: it.Route, Backend: it.Backend,
		Method: it.Method, Path: it.Path, ContentType: it.ContentType, Decision: it.Decision, Reasons: it.Reasons,
		Guards: it.Guards, BodyBytes: len(it.Body), Redacted: rules,
	}
	if len(body) > w.cfg.MaxBodyBytes {
		// Cut after redaction (a secret cut in half would not be found),
		// on a rune boundary.
		cut := w.cfg.MaxBodyBytes
		for cut > 0 && !utf8.RuneStart(body[cut]) {
			cut--
		}
		body, rec.Truncated = body[:cut], true
	}
	rec.Body = body
	line, err := json.Marshal(rec)
	if err != nil {
		w.log.Error("capture: encode", "request_id", it.RequestID, "error", err)
		return ResultError
	}
	line = append(line, '\n')
	if w.size+int64(len(line)) > w.cfg.MaxFileBytes {
		w.size = w.cfg.MaxFileBytes
		w.log.Warn("capture: file reached max_file_bytes; capture stopped", "path", w.cfg.Path)
		return ResultFileFull
	}
	n, err := w.f.Write(line)
	w.size += int64(n)
	if err != nil {
		w.log.Error("capture: write", "path", w.cfg.Path, "error", err)
		return ResultError
	}
	return ResultWritten
}

// maxWalkDepth bounds the JSON walk; bodies passed the protocol's strict
// parser (depth-bounded) before they get here.
const maxWalkDepth = 128

// redactBody redacts a JSON body string by string (keys too) and re-encodes
// it; anything else is redacted as one text. ok is false if any string could
// not be redacted.
func redactBody(ctx context.Context, body []byte, redact Redactor) (string, []string, bool) {
	found := map[string]bool{}
	var failed bool
	rd := func(s string) string {
		if failed {
			return ""
		}
		out, rules, ok := redact(ctx, s)
		if !ok {
			failed = true
			return ""
		}
		for _, r := range rules {
			found[r] = true
		}
		return out
	}
	var text string
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if json.Valid(body) && dec.Decode(&v) == nil {
		v = walk(v, rd, 0)
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return "", nil, false
		}
		text = string(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
	} else {
		text = rd(string(body))
	}
	if failed {
		return "", nil, false
	}
	rules := make([]string, 0, len(found))
	for r := range found {
		rules = append(rules, r)
	}
	sort.Strings(rules)
	if len(rules) == 0 {
		rules = nil
	}
	return text, rules, true
}

func walk(v any, rd func(string) string, depth int) any {
	if depth > maxWalkDepth {
		return nil
	}
	switch x := v.(type) {
	case string:
		return rd(x)
	case []any:
		for i, e := range x {
			x[i] = walk(e, rd, depth+1)
		}
		return x
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[rd(k)] = walk(e, rd, depth+1)
		}
		return out
	}
	return v
}
