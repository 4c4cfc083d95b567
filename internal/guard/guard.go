// Package guard holds Warden's content detectors: prompt injection and tool
// abuse, secrets and personal data, plus the redaction of what they find.
//
// Every detector runs offline, in-process, on text the gateway already holds
// (a prompt, a tool result, an MCP tool description, a model response). A scan
// never blocks on anything but CPU, is bounded by a context deadline and byte
// caps, and reports OverBudget instead of hanging; what happens then is the
// configured fail mode, block by default.
//
// Findings carry byte offsets into the original text, a rule id and a score in
// [0,1]. Matched text is never logged and never leaves the package except
// through the Finding spans the caller already owns.
package guard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"
)

// Context says where a text came from. The same words weigh differently in a
// user turn than in an MCP tool description, so thresholds are per context.
type Context string

// Contexts the gateway scans.
const (
	ContextUser            Context = "user"
	ContextToolOutput      Context = "tool_output"
	ContextToolDescription Context = "tool_description"
	ContextDocument        Context = "document"
	ContextResponse        Context = "response"
)

// Contexts lists every known context, in a stable order.
var Contexts = []Context{ContextUser, ContextToolOutput, ContextToolDescription, ContextDocument, ContextResponse}

// Categories of findings.
const (
	CategoryPromptInjection = "prompt_injection"
	CategorySecret          = "secret"
	CategoryPII             = "pii"
)

// Categories lists every category, in a stable order.
var Categories = []string{CategoryPromptInjection, CategorySecret, CategoryPII}

// Finding is one thing a detector found. Start and End are byte offsets into
// the text given to Scan (End exclusive), so the caller can redact or point
// at it without the package ever copying the matched text.
type Finding struct {
	// Category is "prompt_injection", "secret" or "pii".
	Category string `json:"category"`
	// Rule is a stable id such as "pi.override", "secret.aws-access-token",
	// "pii.card". It is the placeholder name Redact uses.
	Rule string `json:"rule"`
	// Score in [0,1], already weighted for Context.
	Score float64 `json:"score"`
	// Start and End delimit the finding in the original text.
	Start int `json:"start"`
	End   int `json:"end"`
	// Context is the context the text was scanned in.
	Context Context `json:"context"`
}

// Severity maps a score onto the coarse scale CI tools and humans read:
// "low" < "medium" < "high" < "critical".
func (f Finding) Severity() string { return severity(f.Score) }

func severity(score float64) string {
	switch {
	case score >= 0.9:
		return "critical"
	case score >= 0.7:
		return "high"
	case score >= 0.4:
		return "medium"
	default:
		return "low"
	}
}

// Result is the outcome of one scan.
type Result struct {
	// Findings, sorted by Start then Rule.
	Findings []Finding
	// OverBudget is set when the scan stopped early: input above MaxBytes,
	// deadline reached, or decode budget spent. Findings are then partial.
	OverBudget bool
	// MaxScore is the score per category: for prompt injection the noisy-OR
	// of the best score of each rule family (pi.override, pi.role, ...) (several weak signals add up), for
	// secrets and PII the best single finding. Categories without findings
	// are absent.
	MaxScore map[string]float64
	// Blocked is the verdict under the scanner's thresholds for the scanned
	// context, including the fail mode when OverBudget.
	Blocked bool
	// BlockedBy lists the categories at or above their threshold, or
	// "over_budget".
	BlockedBy []string
}

// FailMode says what an over-budget scan means.
type FailMode string

// Fail modes.
const (
	// FailClosed blocks when a scan is over budget (the default).
	FailClosed FailMode = "closed"
	// FailOpen lets the text through when a scan is over budget, still
	// flagging OverBudget so the audit log shows it.
	FailOpen FailMode = "open"
)

// Thresholds are the per-category scores at or above which a text is
// blocked. A threshold above 1 never blocks (report and redact only).
type Thresholds struct {
	PromptInjection float64 `json:"prompt_injection" yaml:"prompt_injection"`
	Secret          float64 `json:"secret" yaml:"secret"`
	PII             float64 `json:"pii" yaml:"pii"`
}

func (t Thresholds) of(category string) float64 {
	switch category {
	case CategoryPromptInjection:
		return t.PromptInjection
	case CategorySecret:
		return t.Secret
	default:
		return t.PII
	}
}

// DefaultThresholds are tighter for third-party text (tool output, tool
// descriptions, documents) than for the user's own turn, which legitimately
// talks about instructions and rules, and PII never blocks by default.
var DefaultThresholds = map[Context]Thresholds{
	ContextUser:            {PromptInjection: 0.75, Secret: 0.9, PII: 2},
	ContextResponse:        {PromptInjection: 0.8, Secret: 0.9, PII: 2},
	ContextDocument:        {PromptInjection: 0.6, Secret: 0.9, PII: 2},
	ContextToolOutput:      {PromptInjection: 0.6, Secret: 0.9, PII: 2},
	ContextToolDescription: {PromptInjection: 0.5, Secret: 0.9, PII: 2},
}

// Config is the scanner configuration. The zero value is valid: every
// detector on, default thresholds and budgets, fail closed.
type Config struct {
	// Thresholds per context; missing contexts use DefaultThresholds.
	Thresholds map[Context]Thresholds `json:"thresholds" yaml:"thresholds"`
	// Disable turns off whole categories ("prompt_injection", "secret", "pii").
	Disable []string `json:"disable" yaml:"disable"`
	// MaxBytes caps the text one scan reads. Default 1 MiB. Beyond it only
	// the first MaxBytes are scanned and the result is OverBudget.
	MaxBytes int `json:"max_bytes" yaml:"max_bytes"`
	// Timeout bounds one scan (on top of the caller's context). Default 250ms.
	Timeout time.Duration `json:"timeout" yaml:"timeout"`
	// MaxDecodeDepth bounds nested decoding (base64 in hex in ...). Default 3.
	MaxDecodeDepth int `json:"max_decode_depth" yaml:"max_decode_depth"`
	// MaxDecodedBytes bounds the total bytes decoded per scan. Default 64 KiB.
	MaxDecodedBytes int `json:"max_decoded_bytes" yaml:"max_decoded_bytes"`
	// MaxFindings bounds the findings kept per scan. Default 256.
	MaxFindings int `json:"max_findings" yaml:"max_findings"`
	// FailMode for over-budget scans: "closed" (default) or "open".
	FailMode FailMode `json:"fail_mode" yaml:"fail_mode"`
	// StreamWindow is the look-behind, in bytes, a StreamRedactor holds back.
	// Default 256. Secrets longer than the window (PEM private keys are held
	// by their BEGIN marker instead) may be split across emitted chunks.
	StreamWindow int `json:"stream_window" yaml:"stream_window"`
	// Remote, when set, also asks an operator-run classifier (see
	// RemoteConfig). Off by default.
	Remote *RemoteConfig `json:"remote" yaml:"remote"`
	// Logger receives scan errors and budget overruns, never matched text.
	// Nil discards.
	Logger *slog.Logger `json:"-" yaml:"-"`
}

// Defaults for Config.
const (
	DefaultMaxBytes        = 1 << 20
	DefaultTimeout         = 250 * time.Millisecond
	DefaultMaxDecodeDepth  = 3
	DefaultMaxDecodedBytes = 64 << 10
	DefaultMaxFindings     = 256
	DefaultStreamWindow    = 256
)

func (c Config) withDefaults() Config {
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxDecodeDepth == 0 {
		c.MaxDecodeDepth = DefaultMaxDecodeDepth
	}
	if c.MaxDecodedBytes == 0 {
		c.MaxDecodedBytes = DefaultMaxDecodedBytes
	}
	if c.MaxFindings == 0 {
		c.MaxFindings = DefaultMaxFindings
	}
	if c.FailMode == "" {
		c.FailMode = FailClosed
	}
	if c.StreamWindow == 0 {
		c.StreamWindow = DefaultStreamWindow
	}
	th := make(map[Context]Thresholds, len(DefaultThresholds))
	for k, v := range DefaultThresholds {
		th[k] = v
	}
	for k, v := range c.Thresholds {
		th[k] = v
	}
	c.Thresholds = th
	return c
}

// Validate reports every problem in c at once.
func (c Config) Validate() error {
	var errs []error
	if c.MaxBytes < 0 || c.MaxDecodedBytes < 0 || c.MaxDecodeDepth < 0 || c.MaxFindings < 0 || c.StreamWindow < 0 || c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("guard: budgets must not be negative"))
	}
	if c.MaxDecodeDepth > 8 {
		errs = append(errs, fmt.Errorf("guard: max_decode_depth %d above 8", c.MaxDecodeDepth))
	}
	switch c.FailMode {
	case "", FailClosed, FailOpen:
	default:
		errs = append(errs, fmt.Errorf("guard: fail_mode %q: want %q or %q", c.FailMode, FailClosed, FailOpen))
	}
	for k := range c.Thresholds {
		if !validContext(k) {
			errs = append(errs, fmt.Errorf("guard: thresholds: unknown context %q", k))
		}
	}
	for _, d := range c.Disable {
		if d != CategoryPromptInjection && d != CategorySecret && d != CategoryPII {
			errs = append(errs, fmt.Errorf("guard: disable: unknown category %q", d))
		}
	}
	return errors.Join(errs...)
}

func validContext(c Context) bool {
	for _, k := range Contexts {
		if k == c {
			return true
		}
	}
	return false
}

// Scanner runs the detectors. It is safe for concurrent use; build one per
// configuration and share it.
type Scanner struct {
	cfg     Config
	log     *slog.Logger
	pi      bool
	secret  bool
	pii     bool
	secrets *secretEngine
	remote  *Remote
}

// New builds a Scanner. Loading gitleaks' default rules takes a few
// milliseconds and is done once per process.
func New(cfg Config) (*Scanner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Scanner{cfg: cfg, log: cfg.Logger, pi: true, secret: true, pii: true}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for _, d := range cfg.Disable {
		switch d {
		case CategoryPromptInjection:
			s.pi = false
		case CategorySecret:
			s.secret = false
		case CategoryPII:
			s.pii = false
		}
	}
	if cfg.Remote != nil {
		r, err := NewRemote(*cfg.Remote, nil)
		if err != nil {
			return nil, err
		}
		s.remote = r
	}
	if s.secret {
		eng, err := loadSecretEngine()
		if err != nil {
			return nil, fmt.Errorf("guard: load secret rules: %w", err)
		}
		s.secrets = eng
	}
	return s, nil
}

// scan is the per-call state: budgets and the findings collected so far.
type scan struct {
	s          *Scanner
	ctx        context.Context
	c          Context
	findings   []Finding
	decoded    int // bytes decoded so far
	overBudget bool
	// rot13 counts words that are rot13 of injection triggers.
	rot13 int
}

func (st *scan) add(f Finding) {
	if len(st.findings) >= st.s.cfg.MaxFindings {
		return
	}
	f.Context = st.c
	st.findings = append(st.findings, f)
}

// expired reports whether the scan's deadline passed, and records it.
func (st *scan) expired() bool {
	if st.ctx.Err() != nil {
		st.overBudget = true
		return true
	}
	return false
}

// Scan runs every enabled detector over text as seen in context c. It never
// returns an error: a scan that cannot finish within the budget returns what
// it found with OverBudget set, and Blocked follows the fail mode.
func (s *Scanner) Scan(ctx context.Context, text string, c Context) Result {
	r := s.scanLocal(ctx, text, c)
	if len(text) > s.cfg.MaxBytes {
		text = text[:s.cfg.MaxBytes]
	}
	s.consult(ctx, text, c, &r) // the remote classifier has its own timeout
	return r
}

// scanLocal is Scan without the remote classifier.
func (s *Scanner) scanLocal(ctx context.Context, text string, c Context) Result {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	st := &scan{s: s, ctx: ctx, c: c}
	if len(text) > s.cfg.MaxBytes {
		st.overBudget = true
		text = text[:s.cfg.MaxBytes]
	}
	s.scanInto(st, text, 0)
	return s.finish(st)
}

func (s *Scanner) thresholds(c Context) Thresholds {
	th, ok := s.cfg.Thresholds[c]
	if !ok {
		// An unknown context is scored as third-party text: the strictest
		// thresholds we have.
		th = s.cfg.Thresholds[ContextToolDescription]
	}
	return th
}

// scanInto runs the detectors over text at decode depth depth; spans are
// relative to text.
func (s *Scanner) scanInto(st *scan, text string, depth int) {
	if s.pi && !st.expired() {
		s.scanInjection(st, text, depth)
	}
	if s.secret && !st.expired() {
		s.secrets.scan(st, text)
	}
	if s.pii && !st.expired() {
		scanPII(st, text)
	}
	if !st.expired() {
		s.scanEncoded(st, text, depth)
	}
}

func (s *Scanner) finish(st *scan) Result {
	r := Result{Findings: st.findings, OverBudget: st.overBudget}
	sort.SliceStable(r.Findings, func(i, j int) bool {
		a, b := r.Findings[i], r.Findings[j]
		if a.Start != b.Start {
			return a.Start < b.Start
		}
		if a.End != b.End {
			return a.End > b.End
		}
		return a.Rule < b.Rule
	})
	r.Findings = dedupe(r.Findings)
	r.MaxScore = maxScores(r.Findings)
	th := s.thresholds(st.c)
	for _, cat := range Categories {
		if sc, ok := r.MaxScore[cat]; ok && sc >= th.of(cat) {
			r.Blocked = true
			r.BlockedBy = append(r.BlockedBy, cat)
		}
	}
	if r.OverBudget {
		s.log.Warn("guard: scan over budget", "context", string(st.c), "fail_mode", string(s.cfg.FailMode))
		if s.cfg.FailMode != FailOpen {
			r.Blocked = true
			r.BlockedBy = append(r.BlockedBy, "over_budget")
		}
	}
	return r
}

// dedupe drops exact repeats (same rule and span), which arise when a
// decoded payload re-finds what the plain scan found.
func dedupe(fs []Finding) []Finding {
	if len(fs) < 2 {
		return fs
	}
	out := fs[:1]
	for _, f := range fs[1:] {
		dup := false
		for j := len(out) - 1; j >= 0 && out[j].Start == f.Start; j-- {
			if out[j].Rule == f.Rule && out[j].End == f.End {
				if f.Score > out[j].Score {
					out[j].Score = f.Score
				}
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, f)
		}
	}
	return out
}

func maxScores(fs []Finding) map[string]float64 {
	if len(fs) == 0 {
		return map[string]float64{}
	}
	m := make(map[string]float64, 3)
	// Prompt injection: noisy-OR over the best score of each rule family.
	best := map[string]float64{}
	for _, f := range fs {
		if f.Category == CategoryPromptInjection {
			fam := family(f.Rule)
			if f.Score > best[fam] {
				best[fam] = f.Score
			}
			continue
		}
		if f.Score > m[f.Category] {
			m[f.Category] = f.Score
		}
	}
	if len(best) > 0 {
		keys := make([]string, 0, len(best))
		for k := range best {
			keys = append(keys, k)
		}
		sort.Strings(keys) // deterministic float sums
		miss := 1.0
		for _, k := range keys {
			miss *= 1 - best[k]
		}
		m[CategoryPromptInjection] = round3(1 - miss)
	}
	return m
}

// family is a rule id up to its second dot: "pi.override.fr" and
// "pi.override" are one signal, not two independent ones.
func family(rule string) string {
	dots := 0
	for i := 0; i < len(rule); i++ {
		if rule[i] == '.' {
			dots++
			if dots == 2 {
				return rule[:i]
			}
		}
	}
	return rule
}

func round3(f float64) float64 {
	return float64(int(f*1000+0.5)) / 1000
}
