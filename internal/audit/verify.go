package audit

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// MaxLineBytes bounds one record line. The writer refuses larger records and
// the verifier reports longer lines as malformed, so a hostile file cannot
// make the verifier buffer without bound.
const MaxLineBytes = 1 << 20

// hashSuffixLen is len(`,"hash":"`) + 64 hex digits + len(`"}`).
const hashSuffixLen = 9 + 64 + 2

// Report is what Verify found.
type Report struct {
	// Files are the files verified, in chain order.
	Files []string
	// Records counts the records that verified (up to the first problem).
	Records int64
	// FirstSeq and LastSeq are the first and last good sequence numbers.
	FirstSeq, LastSeq uint64
	// Head is the hash of the last good record: export it elsewhere and
	// pass it back as an Anchor to detect later truncation or rewriting.
	Head string
	// Partial is set when the files start mid-chain (FirstSeq > 1, at a
	// rotate record): earlier files were not given, so they are unchecked.
	Partial bool
	// Problem is the first bad record, nil when the chain is intact.
	Problem *Problem
}

// OK reports whether the chain verified.
func (r *Report) OK() bool { return r.Problem == nil }

// String is the one-line summary `warden audit verify` prints.
func (r *Report) String() string {
	if r.Problem != nil {
		return fmt.Sprintf("FAIL %s (%d records verified before it)", r.Problem, r.Records)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "OK %d records in %d file(s)", r.Records, len(r.Files))
	if r.Records > 0 {
		fmt.Fprintf(&b, ", seq %d..%d, head %s", r.FirstSeq, r.LastSeq, r.Head)
	}
	if r.Partial {
		fmt.Fprintf(&b, " (chain starts at seq %d: earlier files not checked)", r.FirstSeq)
	}
	return b.String()
}

// Problem names the first record that does not verify.
type Problem struct {
	File string
	// Line is 1-based.
	Line int
	// Seq is the record's own seq when it could be read, else 0.
	Seq    uint64
	Reason string
}

func (p *Problem) String() string {
	if p.Seq > 0 {
		return fmt.Sprintf("%s:%d: seq %d: %s", p.File, p.Line, p.Seq, p.Reason)
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Reason)
}

// Anchor is a (seq, hash) pair recorded outside the log, for example a head
// hash the gateway logged or exported earlier. Verify fails when the record
// at Seq has another hash or when the chain ends before Seq — which a bare
// hash chain cannot notice after its tail was cut or rewritten.
type Anchor struct {
	Seq  uint64
	Hash string
}

// ParseAnchor parses "SEQ:HASH".
func ParseAnchor(s string) (Anchor, error) {
	seqText, h, ok := strings.Cut(s, ":")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if !ok || err != nil || seq == 0 {
		return Anchor{}, fmt.Errorf("audit: anchor %q: want SEQ:HASH", s)
	}
	if _, err := decodeHash(h); err != nil {
		return Anchor{}, fmt.Errorf("audit: anchor %q: %w", s, err)
	}
	return Anchor{Seq: seq, Hash: h}, nil
}

// VerifyOptions are the optional inputs of VerifyWith.
type VerifyOptions struct {
	// Key verifies a keyed chain (Options.Key); nil for a plain one.
	Key []byte
	// Anchors must all match.
	Anchors []Anchor
}

// Verify checks the hash chain across paths. Each path is a file, a
// directory (its log files, rotated ones first) or a glob; explicit files
// are taken in the order given. It returns an error only when a file cannot
// be read; a chain that does not verify is reported in Report.Problem.
func Verify(paths ...string) (Report, error) {
	return VerifyWith(VerifyOptions{}, paths...)
}

// VerifyWith is Verify with a key and anchors.
func VerifyWith(o VerifyOptions, paths ...string) (Report, error) {
	files, err := Expand(paths...)
	if err != nil {
		return Report{}, err
	}
	c := newChain(newHasher(o.Key))
	c.anchors = o.Anchors
	var rep Report
	for _, name := range files {
		rep.Files = append(rep.Files, name)
		f, err := os.Open(name)
		if err != nil {
			return rep, fmt.Errorf("audit: verify: %w", err)
		}
		res, err := c.verifyFile(f, name)
		f.Close()
		if err != nil {
			return rep, fmt.Errorf("audit: verify %s: %w", name, err)
		}
		if res.problem == nil && res.torn > 0 {
			res.problem = &Problem{File: name, Line: res.lines + 1,
				Reason: fmt.Sprintf("incomplete final line (%d bytes without newline): torn write or truncated file", res.torn)}
		}
		if res.problem != nil {
			c.report(&rep)
			rep.Problem = res.problem
			return rep, nil
		}
	}
	if p := c.missingAnchor(); p != nil {
		c.report(&rep)
		rep.Problem = p
		return rep, nil
	}
	c.report(&rep)
	return rep, nil
}

// Expand turns verify arguments into the ordered list of files: a directory
// yields its *.jsonl log and that log's rotated files, oldest first; a glob
// yields the log files it matches (not the .lock file), ordered the same
// way; a plain file is kept as given.
func Expand(paths ...string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New("audit: no files given")
	}
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		switch {
		case err == nil && st.IsDir():
			ents, err := os.ReadDir(p)
			if err != nil {
				return nil, fmt.Errorf("audit: %w", err)
			}
			var names []string
			bases := map[string]bool{}
			for _, e := range ents {
				if base, _, ok := splitRotated(e.Name()); ok && e.Type().IsRegular() {
					names = append(names, filepath.Join(p, e.Name()))
					bases[base] = true
				}
			}
			if len(names) == 0 {
				return nil, fmt.Errorf("audit: %s holds no *.jsonl audit files", p)
			}
			if len(bases) > 1 {
				return nil, fmt.Errorf("audit: %s holds several logs; name one (e.g. %s/%s*)", p, p, slices.Sorted(maps.Keys(bases))[0])
			}
			sortChain(names)
			out = append(out, names...)
		case err == nil:
			out = append(out, p)
		case strings.ContainsAny(p, "*?["):
			names, gerr := filepath.Glob(p)
			if gerr != nil {
				return nil, fmt.Errorf("audit: glob %q: %w", p, gerr)
			}
			names = slices.DeleteFunc(names, func(n string) bool {
				_, _, ok := splitRotated(filepath.Base(n))
				return !ok
			})
			if len(names) == 0 {
				return nil, fmt.Errorf("audit: %q matches no audit file", p)
			}
			sortChain(names)
			out = append(out, names...)
		default:
			return nil, fmt.Errorf("audit: %w", err)
		}
	}
	return out, nil
}

// splitRotated splits "audit.jsonl.00000000000000000042" into its base
// "audit.jsonl" and first seq 42; the live file "audit.jsonl" has seq
// MaxUint64 so it sorts last. ok is false for other names.
func splitRotated(name string) (base string, seq uint64, ok bool) {
	if strings.HasSuffix(name, ".jsonl") {
		return name, ^uint64(0), true
	}
	i := strings.LastIndexByte(name, '.')
	if i < 0 || !strings.HasSuffix(name[:i], ".jsonl") || len(name)-i-1 != rotatedDigits {
		return "", 0, false
	}
	n, err := strconv.ParseUint(name[i+1:], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return name[:i], n, true
}

// sortChain orders files by base name, then rotated files by their first
// seq, then the live file.
func sortChain(names []string) {
	slices.SortStableFunc(names, func(a, b string) int {
		ba, sa, _ := splitRotated(filepath.Base(a))
		bb, sb, _ := splitRotated(filepath.Base(b))
		if c := strings.Compare(filepath.Join(filepath.Dir(a), ba), filepath.Join(filepath.Dir(b), bb)); c != 0 {
			return c
		}
		switch {
		case sa < sb:
			return -1
		case sa > sb:
			return 1
		}
		return 0
	})
}

// chain is the verifier's state carried across files.
type chain struct {
	h        *hasher
	p        lineParser
	started  bool
	partial  bool
	first    uint64
	seq      uint64
	prev     [32]byte
	records  int64
	anchors  []Anchor
	lastFile string
	lastLine int
}

func newChain(h *hasher) *chain { return &chain{h: h} }

func (c *chain) report(r *Report) {
	r.Records = c.records
	r.FirstSeq, r.LastSeq = c.first, c.seq
	r.Partial = c.partial
	if c.records > 0 {
		r.Head = hex.EncodeToString(c.prev[:])
	}
}

// missingAnchor reports an anchor beyond the chain's end (or before its
// start), at the last good record.
func (c *chain) missingAnchor() *Problem {
	for _, a := range c.anchors {
		if a.Seq > c.seq || (c.records > 0 && a.Seq < c.first) {
			return &Problem{File: c.lastFile, Line: c.lastLine,
				Reason: fmt.Sprintf("anchor seq %d is not in the chain (seq %d..%d): records truncated from the end or earlier files missing", a.Seq, c.first, c.seq)}
		}
	}
	return nil
}

// fileResult is what verifyFile learned about one file.
type fileResult struct {
	lines   int
	good    int64 // offset just after the last good line
	torn    int64 // bytes after the last newline
	problem *Problem
}

// verifyFile checks every complete line of r against the chain. A trailing
// partial line is not a problem here; it is returned as torn for the caller
// to judge (verify fails it, Open repairs it). A chain that has not
// started yet may start mid-way only at a rotate record on a file's first
// line.
func (c *chain) verifyFile(r io.Reader, name string) (fileResult, error) {
	var res fileResult
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long[:0], line...)
			for err == bufio.ErrBufferFull && len(long) <= MaxLineBytes {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
			if len(long) > MaxLineBytes {
				res.problem = &Problem{File: name, Line: res.lines + 1, Reason: fmt.Sprintf("line longer than %d bytes", MaxLineBytes)}
				return res, nil
			}
		}
		if err == io.EOF {
			res.torn = int64(len(line))
			return res, nil
		}
		if err != nil {
			return res, err
		}
		res.lines++
		seq, p := c.check(line[:len(line)-1], res.lines == 1)
		if p != "" {
			res.problem = &Problem{File: name, Line: res.lines, Seq: seq, Reason: p}
			return res, nil
		}
		res.good += int64(len(line))
		c.lastFile, c.lastLine = name, res.lines
	}
}

var genesis [32]byte

// check verifies one line (without its newline) and advances the chain.
// It returns the line's seq (0 when unreadable) and a problem, "" if none.
func (c *chain) check(line []byte, firstLine bool) (uint64, string) {
	rec, err := c.p.parse(line)
	if err != nil {
		return rec.seq, err.Error()
	}
	if got := c.h.sum2(line[:len(line)-hashSuffixLen], []byte{'}'}); got != rec.hash {
		return rec.seq, "hash mismatch: record edited (or wrong key)"
	}
	if rec.event == EventRotate && !firstLine {
		return rec.seq, "rotate record in the middle of a file: record inserted"
	}
	switch {
	case !c.started && rec.seq == 1:
		if rec.prev != genesis {
			return rec.seq, "first record (seq 1) does not link to the zero hash"
		}
		c.first = 1
	case !c.started:
		if !firstLine || rec.event != EventRotate {
			return rec.seq, fmt.Sprintf("chain starts at seq %d without a rotate record: earlier records deleted", rec.seq)
		}
		c.partial = true
		c.first = rec.seq
	case rec.seq == c.seq+1:
		if rec.prev != c.prev {
			return rec.seq, fmt.Sprintf("prev hash does not match the hash of seq %d: record replaced or chain rewritten", c.seq)
		}
	case rec.seq <= c.seq:
		return rec.seq, fmt.Sprintf("expected seq %d: record inserted, duplicated or reordered", c.seq+1)
	default:
		return rec.seq, fmt.Sprintf("expected seq %d: %d record(s) missing (deleted or reordered)", c.seq+1, rec.seq-c.seq-1)
	}
	for _, a := range c.anchors {
		if a.Seq == rec.seq && a.Hash != hex.EncodeToString(rec.hash[:]) {
			return rec.seq, fmt.Sprintf("hash differs from anchor %d:%s: chain rewritten", a.Seq, a.Hash)
		}
	}
	c.started = true
	c.seq, c.prev = rec.seq, rec.hash
	c.records++
	return rec.seq, ""
}

// parsedLine is what the verifier reads of a record.
type parsedLine struct {
	seq        uint64
	prev, hash [32]byte
	event      string
}

// parseLine strictly parses one record line: a JSON object (valid UTF-8,
// no duplicate names at any depth, no top-level name that is a case
// variant of a record field, nothing after it) whose last member is "hash",
// with a positive integer seq, a 64-hex prev, a time and an event. Strict,
// so that what verified is what every JSON reader of the line sees.
func parseLine(line []byte) (parsedLine, error) {
	var p lineParser
	return p.parse(line)
}

// lineParser reuses one decoder across lines.
type lineParser struct {
	rd  bytes.Reader
	dec *jsontext.Decoder
}

// recordFields are the top-level names the writer emits.
var recordFields = []string{"seq", "prev", "hash", "time", "event", "request_id", "spiffe_id", "auth_method",
	"listener", "route", "backend", "kind", "resource", "action", "operation", "decision", "reasons",
	"obligations", "status", "latency_ms", "bytes_in", "bytes_out", "protocol", "error"}

func (p *lineParser) parse(line []byte) (parsedLine, error) {
	var out parsedLine
	n := len(line)
	if n < hashSuffixLen+2 || !bytes.HasSuffix(line, []byte(`"}`)) ||
		!bytes.Equal(line[n-hashSuffixLen:n-hashSuffixLen+9], []byte(`,"hash":"`)) {
		if n == 0 {
			return out, errors.New("empty line")
		}
		return out, errors.New("malformed record: does not end with the hash member")
	}
	p.rd.Reset(line)
	if p.dec == nil {
		p.dec = jsontext.NewDecoder(&p.rd)
	} else {
		p.dec.Reset(&p.rd)
	}
	if err := p.members(&out); err != nil {
		return out, fmt.Errorf("malformed record: %v", err)
	}
	if out.seq == 0 {
		return out, errors.New("malformed record: seq is not a positive integer")
	}
	if out.event == "" {
		return out, errors.New("malformed record: no event")
	}
	return out, nil
}

var errTime = errors.New("time is not RFC 3339")

func (p *lineParser) members(out *parsedLine) error {
	dec := p.dec
	tok, err := dec.ReadToken()
	if err != nil {
		return err
	}
	if tok.Kind() != '{' {
		return errors.New("not a JSON object")
	}
	var seen uint8
	for dec.PeekKind() != '}' {
		name, err := dec.ReadValue()
		if err != nil {
			return err
		}
		// name is only valid until the next read: classify it first.
		var which int
		switch string(name) {
		case `"seq"`:
			which = 1
		case `"prev"`:
			which = 2
		case `"hash"`:
			which = 4
		case `"time"`:
			which = 8
		case `"event"`:
			which = 16
		default:
			if err := foldVariant(name); err != nil {
				return err
			}
			if err := dec.SkipValue(); err != nil {
				return err
			}
			continue
		}
		v, err := dec.ReadValue()
		if err != nil {
			return err
		}
		seen |= uint8(which)
		switch which {
		case 1:
			if v.Kind() == '0' {
				if n, err := strconv.ParseUint(string(v), 10, 64); err == nil {
					out.seq = n
				}
			}
		case 2:
			if out.prev, err = rawHash(v); err != nil {
				return fmt.Errorf("prev: %w", err)
			}
		case 4:
			if out.hash, err = rawHash(v); err != nil {
				return fmt.Errorf("hash: %w", err)
			}
		case 8:
			if v.Kind() != '"' || bytes.IndexByte(v, '\\') >= 0 {
				return errTime
			}
			if _, err := time.Parse(time.RFC3339Nano, string(v[1:len(v)-1])); err != nil {
				return errTime
			}
		case 16:
			if v.Kind() == '"' && validEvent(string(v[1:len(v)-1])) {
				out.event = string(v[1 : len(v)-1])
			} else {
				return errors.New("event is not a snake_case name")
			}
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return errors.New("data after the record")
	}
	if seen != 31 {
		return errors.New("missing seq, prev, hash, time or event")
	}
	return nil
}

// foldVariant refuses a top-level name that a case-insensitive reader
// would take for a record field ("Seq", "HASH", "\u0073eq").
func foldVariant(raw jsontext.Value) error {
	name := raw[1 : len(raw)-1]
	if knownField[string(name)] {
		return nil
	}
	escaped := bytes.IndexByte(name, '\\') >= 0
	if escaped {
		s, err := jsontext.AppendUnquote(nil, raw)
		if err != nil {
			return err
		}
		name = s
	}
	for _, f := range recordFieldBytes {
		if bytes.EqualFold(name, f) && (escaped || !bytes.Equal(name, f)) {
			return fmt.Errorf("name %q is a variant of %q", name, f)
		}
	}
	return nil
}

var knownField = func() map[string]bool {
	m := map[string]bool{}
	for _, f := range recordFields {
		m[f] = true
	}
	return m
}()

var recordFieldBytes = func() [][]byte {
	out := make([][]byte, len(recordFields))
	for i, f := range recordFields {
		out[i] = []byte(f)
	}
	return out
}()

func rawHash(v jsontext.Value) ([32]byte, error) {
	var h [32]byte
	if v.Kind() != '"' || len(v) != 66 {
		return h, errors.New("not 64 lowercase hex digits")
	}
	return decodeHash(string(v[1:65]))
}

func decodeHash(s string) ([32]byte, error) {
	var h [32]byte
	if len(s) != 64 || strings.ContainsAny(s, "ABCDEF") {
		return h, errors.New("not 64 lowercase hex digits")
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, errors.New("not 64 lowercase hex digits")
	}
	return h, nil
}

// Files lists the files of the log whose live file is path: its rotated
// files oldest first, then the live file (when it exists).
func Files(path string) ([]string, error) {
	names, err := filepath.Glob(path + ".*")
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	var out []string
	for _, n := range names {
		if base, seq, ok := splitRotated(filepath.Base(n)); ok && base == filepath.Base(path) && seq != ^uint64(0) {
			out = append(out, n)
		}
	}
	if _, err := os.Stat(path); err == nil {
		out = append(out, path)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("audit: no log files at %s", path)
	}
	sortChain(out)
	return out, nil
}
