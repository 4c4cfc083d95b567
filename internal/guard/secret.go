package guard

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/spf13/viper"
	"github.com/zricethezav/gitleaks/v8/config"
)

// Secrets are found with gitleaks' maintained default rules (its embedded
// gitleaks.toml: ~220 provider rules with keywords, secret groups, entropy
// floors and allowlists), evaluated by a small engine here rather than by
// gitleaks' own Detector, for three reasons measured in BenchmarkSecrets:
//
//   - byte offsets: the Detector reports line/column of the match, the
//     redactor needs byte offsets of the secret group;
//   - cost: the Detector lowercases the whole input, then runs every rule
//     whose keyword occurs anywhere over the whole input; keywords such as
//     "key", "api", "ey" and "sk" occur in any prose, so a 16 KiB prompt
//     costs milliseconds. Here a rule runs only in a window around its
//     keyword's occurrences (its matches contain the keyword);
//   - no global state: the Detector logs through a global zerolog logger and
//     NewDetectorDefaultConfig writes to viper's global instance.
//
// TestSecretsMatchGitleaksDetector checks on the evaluation set that this
// engine finds what gitleaks' Detector finds.

type secretRule struct {
	id        string // "secret.<gitleaks rule id>"
	rule      config.Rule
	multiline bool
	score     float64
	// assign: the rule is gitleaks' "name = value" template, so one of
	// = : > , | must follow its keyword within assignReach bytes.
	assign bool
	// prefix: keywords that are the literal start of the secret (ghp_, ey,
	// sk) → the character run that must follow them ("[0-9a-zA-Z]{36}").
	prefix map[string]*prefixRun
	// minDistinct: a secret with Shannon entropy above the rule's floor e
	// has more than 2^e distinct bytes, so a value with fewer cannot pass.
	minDistinct int
	// pre is an extra necessary condition at a keyword hit (own rules).
	pre func(text string, pos int) bool
}

// Necessary conditions checked at a keyword before a rule's regexp runs
// (see secretRule). They only skip work: TestSecretsMatchGitleaksDetector
// compares findings with gitleaks' own Detector.
const (
	assignOps    = `(?:=|>|:{1,3}=|\|\||:|=>|\?=|,)`
	assignReach  = 32
	minPrefixRun = 6
)

type secretEngine struct {
	rules   []secretRule
	kw      *kwMatcher
	byKW    map[string][]int // lowercased keyword → rule indexes
	kwRules [][]kwRule       // keyword number → its rules, as byKW
	always  []int            // rules without keywords
	kws     []string         // keyword number → keyword
	global  []*config.Allowlist
	version string
}

// kwRule is a rule triggered by a keyword, with the run its match must
// have right after that keyword (nil if none is known).
type kwRule struct {
	ri     int
	prefix *prefixRun
}

var (
	secretOnce sync.Once
	secretEng  *secretEngine
	secretErr  error
)

// loadSecretEngine parses gitleaks' default config once per process, with a
// private viper instance (gitleaks' own helper uses the global one).
func loadSecretEngine() (*secretEngine, error) {
	secretOnce.Do(func() {
		v := viper.New()
		v.SetConfigType("toml")
		if err := v.ReadConfig(strings.NewReader(config.DefaultConfig)); err != nil {
			secretErr = fmt.Errorf("read gitleaks default config: %w", err)
			return
		}
		var vc config.ViperConfig
		if err := v.Unmarshal(&vc); err != nil {
			secretErr = fmt.Errorf("decode gitleaks default config: %w", err)
			return
		}
		cfg, err := vc.Translate()
		if err != nil {
			secretErr = fmt.Errorf("translate gitleaks default config: %w", err)
			return
		}
		secretEng = newSecretEngine(cfg)
	})
	return secretEng, secretErr
}

// genericScore is the score of gitleaks' catch-all rules, which match any
// high-entropy value assigned to a name like "key" or "token": redacted, but
// below the default blocking threshold.
const genericScore = 0.75

func newSecretEngine(cfg config.Config) *secretEngine {
	e := &secretEngine{byKW: map[string][]int{}, global: cfg.Allowlists}
	var kws []string
	for _, id := range sortedKeys(cfg.Rules) {
		r := cfg.Rules[id]
		// Path-only and path-scoped rules need a file name we do not have.
		if r.Regex == nil || r.Path != nil || r.SkipReport {
			continue
		}
		sr := secretRule{id: "secret." + r.RuleID, rule: r, score: 1}
		src := r.Regex.String()
		sr.multiline = strings.Contains(src, `[\s\S`) || strings.Contains(src, `(?s`)
		if strings.HasPrefix(r.RuleID, "generic") {
			sr.score = genericScore
		}
		sr.assign = strings.Contains(src, assignOps)
		if r.Entropy > 0 {
			sr.minDistinct = int(math.Floor(math.Pow(2, r.Entropy))) + 1
		}
		for _, k := range r.Keywords {
			k = strings.ToLower(k)
			if re := prefixClass(src, regexpQuoteLower(k)); re != nil {
				if sr.prefix == nil {
					sr.prefix = map[string]*prefixRun{}
				}
				sr.prefix[k] = newPrefixRun(re)
			}
		}
		i := len(e.rules)
		e.rules = append(e.rules, sr)
		if len(r.Keywords) == 0 {
			e.always = append(e.always, i)
		}
		for _, k := range r.Keywords {
			k = strings.ToLower(k)
			if _, seen := e.byKW[k]; !seen {
				kws = append(kws, k)
			}
			e.byKW[k] = append(e.byKW[k], i)
		}
	}
	for _, x := range extraSecretRules {
		i := len(e.rules)
		e.rules = append(e.rules, secretRule{id: x.id, rule: config.Rule{RuleID: x.id, Regex: x.re, SecretGroup: x.group, Keywords: x.keywords}, score: x.score, pre: x.pre})
		for _, k := range x.keywords {
			if _, seen := e.byKW[k]; !seen {
				kws = append(kws, k)
			}
			e.byKW[k] = append(e.byKW[k], i)
		}
	}
	e.kw = newKWMatcher(kws)
	e.kws = kws
	e.kwRules = make([][]kwRule, len(kws))
	for i, k := range kws {
		for _, ri := range e.byKW[k] {
			e.kwRules[i] = append(e.kwRules[i], kwRule{ri, e.rules[ri].prefix[k]})
		}
	}
	return e
}

func sortedKeys(m map[string]config.Rule) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// extraSecretRules are what gitleaks' default rules lack, each with its
// reason.
var extraSecretRules = []struct {
	id       string
	re       *regexp.Regexp
	group    int
	keywords []string
	score    float64
	pre      func(text string, pos int) bool
	why      string
}{
	{
		id: "secret.connection-string",
		// scheme://user:password@host — gitleaks has no rule for credentials
		// embedded in database/broker URIs (postgres, mysql, mongodb+srv,
		// redis, amqp, ...), the most common way an agent pastes a password.
		re:       regexp.MustCompile(`(?i)\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|redis|rediss|amqps?|mssql|sqlserver|oracle|clickhouse|cockroachdb|jdbc:[a-z]+|ftp|sftp|smtps?|ldaps?|nats|kafka|https?)://[^\s:/@'"<>]{1,128}:([^\s@/'"<>]{3,256})@[a-z0-9.\-\[\]_]+`),
		group:    1,
		keywords: []string{"://"},
		score:    0.95,
		pre:      userinfoFollows,
		why:      "gitleaks default rules have no connection-string rule",
	},
}

// userinfoFollows: "://" is followed by user:password@ before any space.
func userinfoFollows(text string, pos int) bool {
	rest := text[pos+3 : min(len(text), pos+3+400)]
	at := strings.IndexAny(rest, "@ \t\n\"'<>")
	return at > 0 && rest[at] == '@' && strings.IndexByte(rest[:at], ':') > 0
}

// placeholderPassword rejects the passwords documentation uses.
var placeholderPassword = regexp.MustCompile(`(?i)^(?:password|passwd|pass|pwd|secret|changeme|example|xxx+|\*+|\.+|<[^>]*>|\$\{[^}]*\}|\$[a-z_]+|\{\{[^}]*\}\}|%[a-z_]+%|your[_-]?password|user|admin|test|dummy|redacted|\[redacted[^\]]*\])$`)

const (
	secretBack = 256
	secretFwd  = 512
	// secretMultiFwd bounds rules spanning lines (PEM blocks).
	secretMultiFwd = 16 << 10
)

// scan runs the secret rules over text.
func (e *secretEngine) scan(st *scan, text string) {
	sc := secretPool.Get().(*secretScratch)
	defer secretPool.Put(sc)
	if len(sc.wins) < len(e.rules) {
		sc.wins = make([][]window, len(e.rules))
	}
	wins := sc.wins[:len(e.rules)]
	defer func() {
		for ri := range wins {
			wins[ri] = wins[ri][:0]
		}
	}()
	add := func(ri, pos int, kw string, prefix *prefixRun) {
		r := &e.rules[ri]
		if !r.plausible(text, pos, kw, prefix) {
			return
		}
		var a, b int
		switch {
		case r.assign:
			// gitleaks' template: ≤50 name bytes, keyword, ≤23 bytes,
			// operator, ≤5 quote bytes, ≤150 value bytes, terminator.
			a, b = max(0, pos-64), min(len(text), pos+len(kw)+assignReach+8+160)
		case r.multiline:
			a, b = max(0, pos-secretBack), min(len(text), pos+secretMultiFwd)
		default:
			a, b = max(0, pos-secretBack), min(len(text), pos+secretFwd)
			// Extend to line edges (bounded) so ^, $ and \b behave as on
			// the full text.
			for k := 0; a > 0 && text[a-1] != '\n' && k < 256; k++ {
				a--
			}
			for k := 0; b < len(text) && text[b] != '\n' && k < 256; k++ {
				b++
			}
		}
		ws := wins[ri]
		if k := len(ws); k > 0 && ws[k-1].b >= a {
			ws[k-1].b = max(ws[k-1].b, b)
			return
		}
		wins[ri] = append(ws, window{a, b})
	}
	sc.hits = e.kw.find(text, sc.hits[:0])
	for _, h := range sc.hits {
		kw := e.kws[h.kw]
		for _, kr := range e.kwRules[h.kw] {
			add(kr.ri, h.start, kw, kr.prefix)
		}
	}
	for _, ri := range e.always {
		wins[ri] = append(wins[ri][:0], window{0, len(text)})
	}
	var found []Finding
	defer func() {
		for _, f := range preferSpecific(found) {
			st.add(f)
		}
	}()
	for ri := range e.rules {
		ws := wins[ri]
		if len(ws) == 0 {
			continue
		}
		if st.expired() {
			return
		}
		if len(ws) > 1 {
			ws = mergeWindows(ws)
		}
		r := &e.rules[ri]
		lastEnd := -1
		for _, w := range ws {
			for _, m := range r.rule.Regex.FindAllStringSubmatchIndex(text[w.a:w.b], -1) {
				for k := range m {
					if m[k] >= 0 {
						m[k] += w.a
					}
				}
				if m[0] < lastEnd {
					continue
				}
				if f, ok := e.check(r, text, m); ok {
					lastEnd = m[1]
					found = append(found, f)
				}
			}
		}
	}
}

// preferSpecific drops a generic finding whose secret lies inside a
// specific rule's finding, as gitleaks' own filter does: "GITHUB_TOKEN=ghp_..."
// is a github-pat, not also a generic-api-key.
func preferSpecific(fs []Finding) []Finding {
	out := make([]Finding, 0, len(fs))
	for _, f := range fs {
		keep := true
		if strings.Contains(f.Rule, "generic") {
			for _, g := range fs {
				if !strings.Contains(g.Rule, "generic") && g.Start <= f.Start && f.End <= g.End {
					keep = false
					break
				}
			}
		}
		if keep {
			out = append(out, f)
		}
	}
	return out
}

// plausible applies the rule's necessary conditions at a keyword hit;
// prefix is r.prefix[kw].
func (r *secretRule) plausible(text string, pos int, kw string, prefix *prefixRun) bool {
	end := pos + len(kw)
	if prefix != nil && !prefix.match(text[end:min(len(text), end+200)]) {
		return false
	}
	if r.pre != nil && !r.pre(text, pos) {
		return false
	}
	if r.assign && !assignedValue(text, end, r.minDistinct) {
		return false
	}
	return true
}

// assignedValue reports whether an assignment operator follows within
// assignReach bytes of end and is followed by a value of at least 10 token
// bytes, the shortest value gitleaks' template accepts, with at least
// minDistinct distinct bytes. It reads the original text: lowercasing would
// merge distinct bytes.
func assignedValue(text string, end, minDistinct int) bool {
	lim := min(len(text), end+assignReach)
	for k := end; k < lim; k++ {
		switch text[k] {
		case '=', ':', '>', ',', '|':
		default:
			continue
		}
		v := k + 1
		for skip := 0; v < len(text) && skip < 8 && valueLead[text[v]]; skip++ {
			v++
		}
		var seen [4]uint64
		n, distinct := 0, 0
		for v+n < len(text) && n < 160 && tokenByte[text[v+n]] {
			if c := text[v+n]; seen[c>>6]&(1<<(c&63)) == 0 {
				seen[c>>6] |= 1 << (c & 63)
				distinct++
			}
			n++
		}
		if n >= 10 && distinct >= minDistinct {
			return true
		}
	}
	return false
}

// prefixClass finds kw in the lowercased regexp source src followed by a
// character class repeated at least minPrefixRun times ("ghp_[0-9a-zA-Z]{36}",
// "s\.(?i:[a-z0-9]{24})") and returns an anchored regexp for that run: a
// match of the rule must have it right after the keyword. It returns nil
// when the shape is anything else.
func prefixClass(src, kw string) *regexp.Regexp {
	i := strings.Index(strings.ToLower(src), kw)
	if i < 0 {
		return nil
	}
	rest := src[i+len(kw):]
	flags := ""
	if strings.HasPrefix(rest, "(?i:") || strings.HasPrefix(rest, "(?i)") {
		flags, rest = "(?i)", rest[4:]
	} else if strings.HasPrefix(src, "(?i)") {
		flags = "(?i)"
	}
	if !strings.HasPrefix(rest, "[") || strings.HasPrefix(rest, "[^") {
		return nil
	}
	j := strings.IndexByte(rest, ']')
	if j < 0 {
		return nil
	}
	class := rest[:j+1]
	q := rest[j+1:]
	if !strings.HasPrefix(q, "{") {
		return nil
	}
	n := 0
	for k := 1; k < len(q) && q[k] >= '0' && q[k] <= '9'; k++ {
		n = n*10 + int(q[k]-'0')
	}
	if n < minPrefixRun {
		return nil
	}
	re, err := regexp.Compile("^" + flags + class + "{" + itoa(n) + "}")
	if err != nil {
		return nil
	}
	return re
}

// regexpQuoteLower is how a lowercased keyword appears in a lowercased
// regexp source.
func regexpQuoteLower(k string) string { return strings.ToLower(regexp.QuoteMeta(k)) }

// check applies gitleaks' post-match logic (secret group, entropy floor,
// allowlists) to one regexp match.
func (e *secretEngine) check(r *secretRule, text string, m []int) (Finding, bool) {
	ms, me := m[0], m[1]
	match := strings.Trim(text[ms:me], "\n")
	ss, se := ms, ms+len(match)
	if len(m) >= 4 {
		g := r.rule.SecretGroup
		if g > 0 && 2*g+1 < len(m) && m[2*g] >= 0 {
			ss, se = m[2*g], m[2*g+1]
		} else if g == 0 {
			for k := 1; 2*k+1 < len(m); k++ {
				if m[2*k] >= 0 && m[2*k+1] > m[2*k] {
					ss, se = m[2*k], m[2*k+1]
					break
				}
			}
		}
	}
	secret := text[ss:se]
	if r.rule.Entropy != 0 && shannon(secret) <= r.rule.Entropy {
		return Finding{}, false
	}
	if r.id == "secret.connection-string" && placeholderPassword.MatchString(secret) {
		return Finding{}, false
	}
	line := lineAround(text, ms, me)
	for _, lists := range [][]*config.Allowlist{e.global, r.rule.Allowlists} {
		for _, a := range lists {
			if allowed(a, secret, match, line) {
				return Finding{}, false
			}
		}
	}
	return Finding{Category: CategorySecret, Rule: r.id, Score: r.score, Start: ss, End: se}, true
}

// allowed mirrors gitleaks' checkFindingAllowed for content-only fragments
// (no commit, no path: allowlists that require one never match).
func allowed(a *config.Allowlist, secret, match, line string) bool {
	target := secret
	switch a.RegexTarget {
	case "match":
		target = match
	case "line":
		target = line
	}
	regexOK := a.RegexAllowed(target)
	stop, _ := a.ContainsStopWord(secret)
	if a.MatchCondition == config.AllowlistMatchAnd {
		if len(a.Commits) > 0 || len(a.Paths) > 0 {
			return false
		}
		checks := 0
		okAll := true
		if len(a.Regexes) > 0 {
			checks++
			okAll = okAll && regexOK
		}
		if len(a.StopWords) > 0 {
			checks++
			okAll = okAll && stop
		}
		return checks > 0 && okAll
	}
	return regexOK || stop
}

func lineAround(text string, a, b int) string {
	for a > 0 && text[a-1] != '\n' {
		a--
	}
	for b < len(text) && text[b] != '\n' && text[b] != '\r' {
		b++
	}
	return text[a:b]
}

// shannon is gitleaks' shannonEntropy, kept identical (rune counts over
// the byte length) so entropy floors mean the same thing.
func shannon(s string) float64 {
	if s == "" {
		return 0
	}
	counts := make(map[rune]int, 32)
	for _, r := range s {
		counts[r]++
	}
	inv := 1.0 / float64(len(s))
	h := 0.0
	for _, c := range counts {
		p := float64(c) * inv
		h -= p * math.Log2(p)
	}
	return h
}

// secretScratch is the per-scan working memory of secretEngine.scan,
// pooled: keyword hits and windows per rule.
type secretScratch struct {
	hits []kwHit
	wins [][]window
}

var secretPool = sync.Pool{New: func() any { return new(secretScratch) }}

// prefixRun is a prefixClass regexp ("^[0-9a-zA-Z]{36}") evaluated as a
// byte table where that is exact: for ASCII input the n runes are n bytes,
// each in the class. Input with a non-ASCII byte in the run goes to the
// regexp ((?i) classes hold non-ASCII folds such as U+212A, Kelvin).
type prefixRun struct {
	re  *regexp.Regexp
	n   int
	tab [128]bool
}

// newPrefixRun reads the class and count back from a regexp prefixClass
// built; on any other shape it keeps to the regexp alone (n == 0).
func newPrefixRun(re *regexp.Regexp) *prefixRun {
	p := &prefixRun{re: re}
	src := re.String() // "^" + flags + class + "{" + n + "}"
	i := strings.LastIndexByte(src, '{')
	if i < 0 || !strings.HasSuffix(src, "}") {
		return p
	}
	n := 0
	for _, c := range src[i+1 : len(src)-1] {
		if c < '0' || c > '9' {
			return p
		}
		n = n*10 + int(c-'0')
	}
	one, err := regexp.Compile(src[:i] + "$")
	if err != nil || n == 0 {
		return p
	}
	for c := 0; c < 128; c++ {
		p.tab[c] = one.MatchString(string(rune(c)))
	}
	p.n = n
	return p
}

// match is p.re.MatchString(s).
func (p *prefixRun) match(s string) bool {
	if p.n == 0 {
		return p.re.MatchString(s)
	}
	if len(s) < p.n {
		return false
	}
	for k := 0; k < p.n; k++ {
		c := s[k]
		if c >= 0x80 {
			return p.re.MatchString(s)
		}
		if !p.tab[c] {
			return false
		}
	}
	return true
}

func isTokenByte(c byte) bool {
	return isAlnum(c) || c == '_' || c == '-' || c == '+' || c == '/' || c == '=' || c == '.'
}

// tokenByte is isTokenByte as a table; valueLead holds the quote, space and
// operator bytes assignedValue skips before a value.
var tokenByte, valueLead = func() (tok, lead [256]bool) {
	for c := range tok {
		tok[c] = isTokenByte(byte(c))
	}
	for _, c := range []byte("=:>|?`'\" \t\n\r") {
		lead[c] = true
	}
	return tok, lead
}()
