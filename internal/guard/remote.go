package guard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// RemoteConfig points the scanner at an operator-run classifier (Llama
// Guard, Prompt Guard or any model behind a small HTTP shim). It is optional:
// the offline detectors never need it.
//
// Wire format (the whole contract):
//
//	POST <URL>  Content-Type: application/json
//	{"text": "...", "context": "tool_output"}
//	200 OK      {"label": "injection" | "benign", "score": 0.97}
//
// score is the probability of injection in [0,1]; label is informational.
type RemoteConfig struct {
	// URL of the classifier endpoint. Required.
	URL string `json:"url" yaml:"url"`
	// Timeout per call. Default 2s.
	Timeout time.Duration `json:"timeout" yaml:"timeout"`
	// FailMode when the classifier errs or times out: "closed" (default)
	// blocks the text, "open" keeps the offline verdict.
	FailMode FailMode `json:"fail_mode" yaml:"fail_mode"`
	// Contexts to send. Default user, tool_output, tool_description,
	// document (responses are not sent: the latency is on the stream).
	Contexts []Context `json:"contexts" yaml:"contexts"`
	// MaxBytes sent per call; longer texts are sent truncated. Default 32 KiB.
	MaxBytes int `json:"max_bytes" yaml:"max_bytes"`
}

// Remote is the classifier client.
type Remote struct {
	cfg    RemoteConfig
	client *http.Client
	want   map[Context]bool
}

// ErrRemote wraps every classifier failure.
var ErrRemote = errors.New("guard: remote classifier")

// NewRemote validates cfg. client nil means a client with cfg.Timeout.
func NewRemote(cfg RemoteConfig, client *http.Client) (*Remote, error) {
	if cfg.URL == "" {
		return nil, fmt.Errorf("%w: url is required", ErrRemote)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.FailMode == "" {
		cfg.FailMode = FailClosed
	}
	if cfg.FailMode != FailClosed && cfg.FailMode != FailOpen {
		return nil, fmt.Errorf("%w: fail_mode %q", ErrRemote, cfg.FailMode)
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 32 << 10
	}
	if len(cfg.Contexts) == 0 {
		cfg.Contexts = []Context{ContextUser, ContextToolOutput, ContextToolDescription, ContextDocument}
	}
	if client == nil {
		client = &http.Client{Timeout: cfg.Timeout}
	}
	r := &Remote{cfg: cfg, client: client, want: map[Context]bool{}}
	for _, c := range cfg.Contexts {
		r.want[c] = true
	}
	return r, nil
}

type remoteRequest struct {
	Text    string  `json:"text"`
	Context Context `json:"context"`
}

type remoteResponse struct {
	Label string   `json:"label"`
	Score *float64 `json:"score"`
}

// Classify asks the classifier about text. The finding spans the whole
// (possibly truncated) text under rule "pi.remote".
func (r *Remote) Classify(ctx context.Context, text string, c Context) (Finding, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	if len(text) > r.cfg.MaxBytes {
		text = text[:r.cfg.MaxBytes]
	}
	body, err := json.Marshal(remoteRequest{Text: text, Context: c})
	if err != nil {
		return Finding{}, fmt.Errorf("%w: encode: %v", ErrRemote, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return Finding{}, fmt.Errorf("%w: %v", ErrRemote, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return Finding{}, fmt.Errorf("%w: %v", ErrRemote, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Finding{}, fmt.Errorf("%w: status %d", ErrRemote, resp.StatusCode)
	}
	var out remoteResponse
	dec := json.NewDecoder(io.LimitReader(resp.Body, 64<<10))
	if err := dec.Decode(&out); err != nil {
		return Finding{}, fmt.Errorf("%w: decode: %v", ErrRemote, err)
	}
	if out.Score == nil || *out.Score < 0 || *out.Score > 1 {
		return Finding{}, fmt.Errorf("%w: missing or out-of-range score", ErrRemote)
	}
	return Finding{Category: CategoryPromptInjection, Rule: "pi.remote", Score: round3(*out.Score), Start: 0, End: len(text), Context: c}, nil
}

// consult adds the classifier's verdict to a finished result, applying its
// fail mode. Called by Scan when Config.Remote is set.
func (s *Scanner) consult(ctx context.Context, text string, c Context, r *Result) {
	if s.remote == nil || !s.remote.want[c] {
		return
	}
	f, err := s.remote.Classify(ctx, text, c)
	if err != nil {
		s.log.Warn("guard: remote classifier failed", "context", string(c), "fail_mode", string(s.remote.cfg.FailMode), "error", err)
		if s.remote.cfg.FailMode == FailClosed {
			r.Blocked = true
			r.BlockedBy = append(r.BlockedBy, "remote_unavailable")
		}
		return
	}
	if f.Score < remoteFloor {
		return
	}
	r.Findings = append(r.Findings, f)
	r.MaxScore = maxScores(r.Findings)
	th := s.thresholds(c)
	if r.MaxScore[CategoryPromptInjection] >= th.PromptInjection && !containsStr(r.BlockedBy, CategoryPromptInjection) {
		r.Blocked = true
		r.BlockedBy = append(r.BlockedBy, CategoryPromptInjection)
	}
}

// remoteFloor is the classifier score below which no finding is recorded:
// classifiers give every text some small probability.
const remoteFloor = 0.1

func containsStr(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
