package audit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wardenhq/warden/internal/config"
)

// buildLog writes n sample records into dir, one commit each so file
// boundaries are deterministic; rotate > 0 rotates at that size.
func buildLog(t *testing.T, dir string, n int, rotate int64) {
	t.Helper()
	l := openLog(t, dir, func(c *config.Audit) { c.RotateBytes = rotate }, Options{})
	appendN(t, l, 0, n)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// forge builds a correctly hashed line for sample(i) at seq after prevLine,
// as an attacker with write access and no key could.
func forge(t *testing.T, seq uint64, prevLine string, rec *Record) string {
	t.Helper()
	p, err := parseLine([]byte(prevLine))
	if err != nil {
		t.Fatal(err)
	}
	body, err := appendBody(nil, rec, rec.Time)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := newHasher(nil).appendLine(nil, seq, p.hash, body)
	return strings.TrimSuffix(string(line), "\n")
}

type tamperCase struct {
	name   string
	rotate int64
	// tamper edits the log in dir.
	tamper func(t *testing.T, dir string)
	// want is the expected problem; File is relative to dir. Nil = intact.
	want *Problem
}

var tamperCases = []tamperCase{
	{name: "intact"},
	{name: "intact_rotated", rotate: 1200},
	{
		name: "edit_field",
		tamper: edit(func(l []string) []string {
			l[3] = strings.Replace(l[3], `"status":200`, `"status":201`, 1)
			return l
		}),
		want: &Problem{File: "audit.jsonl", Line: 4, Seq: 4, Reason: "hash mismatch: record edited (or wrong key)"},
	},
	{
		name: "edit_spiffe_id",
		tamper: edit(func(l []string) []string {
			l[0] = strings.Replace(l[0], "agent/support", "agent/admin", 1)
			return l
		}),
		want: &Problem{File: "audit.jsonl", Line: 1, Seq: 1, Reason: "hash mismatch: record edited (or wrong key)"},
	},
	{
		name:   "delete_line",
		tamper: edit(func(l []string) []string { return append(l[:4:4], l[5:]...) }),
		want:   &Problem{File: "audit.jsonl", Line: 5, Seq: 6, Reason: "expected seq 5: 1 record(s) missing (deleted or reordered)"},
	},
	{
		name:   "delete_first_line",
		tamper: edit(func(l []string) []string { return l[1:] }),
		want:   &Problem{File: "audit.jsonl", Line: 1, Seq: 2, Reason: "chain starts at seq 2 without a rotate record: earlier records deleted"},
	},
	{
		name: "insert_forged_line",
		tamper: func(t *testing.T, dir string) {
			edit(func(l []string) []string {
				r := sample(4)
				r.Decision, r.Reasons = DecisionAllow, []string{"forged"}
				forged := forge(t, 5, l[3], r)
				return append(l[:4:4], append([]string{forged}, l[4:]...)...)
			})(t, dir)
		},
		want: &Problem{File: "audit.jsonl", Line: 6, Seq: 5, Reason: "expected seq 6: record inserted, duplicated or reordered"},
	},
	{
		name: "insert_garbage_hash",
		tamper: edit(func(l []string) []string {
			bad := l[4][:len(l[4])-hashSuffixLen] + `,"hash":"` + strings.Repeat("ab", 32) + `"}`
			return append(l[:4:4], append([]string{bad}, l[4:]...)...)
		}),
		want: &Problem{File: "audit.jsonl", Line: 5, Seq: 5, Reason: "hash mismatch: record edited (or wrong key)"},
	},
	{
		name: "replace_record_rehashed",
		tamper: func(t *testing.T, dir string) {
			edit(func(l []string) []string {
				r := sample(2)
				r.Decision, r.Reasons = DecisionDeny, []string{"rewritten"}
				l[2] = forge(t, 3, l[1], r)
				return l
			})(t, dir)
		},
		want: &Problem{File: "audit.jsonl", Line: 4, Seq: 4, Reason: "prev hash does not match the hash of seq 3: record replaced or chain rewritten"},
	},
	{
		name: "swap_lines",
		tamper: edit(func(l []string) []string {
			l[2], l[3] = l[3], l[2]
			return l
		}),
		want: &Problem{File: "audit.jsonl", Line: 3, Seq: 4, Reason: "expected seq 3: 1 record(s) missing (deleted or reordered)"},
	},
	{
		name: "duplicate_line",
		tamper: edit(func(l []string) []string {
			return append(l[:3:3], append([]string{l[2]}, l[3:]...)...)
		}),
		want: &Problem{File: "audit.jsonl", Line: 4, Seq: 3, Reason: "expected seq 4: record inserted, duplicated or reordered"},
	},
	{
		name: "truncate_line_in_middle",
		tamper: edit(func(l []string) []string {
			l[5] = l[5][:len(l[5])/2]
			return l
		}),
		want: &Problem{File: "audit.jsonl", Line: 6, Reason: "malformed record: does not end with the hash member"},
	},
	{
		name: "truncate_file_mid_line",
		tamper: func(t *testing.T, dir string) {
			p := filepath.Join(dir, "audit.jsonl")
			l := readLines(t, p)
			// Lines 1-9 intact, then 100 bytes of line 10 and no newline.
			if err := os.WriteFile(p, []byte(strings.Join(l[:9], "\n")+"\n"+l[9][:100]), 0o600); err != nil {
				t.Fatal(err)
			}
		},
		want: &Problem{File: "audit.jsonl", Line: 10, Reason: "incomplete final line (100 bytes without newline): torn write or truncated file"},
	},
	{
		name:   "blank_line",
		tamper: edit(func(l []string) []string { return append(l[:2:2], append([]string{""}, l[2:]...)...) }),
		want:   &Problem{File: "audit.jsonl", Line: 3, Reason: "empty line"},
	},
	{
		name:   "rotation_delete_last_of_rotated_file",
		rotate: 1200,
		tamper: func(t *testing.T, dir string) {
			p := rotatedName(dir, 1)
			l := readLines(t, p)
			writeLines(t, p, l[:len(l)-1])
		},
		want: &Problem{File: "audit.jsonl.00000000000000000004", Line: 1, Seq: 4, Reason: "expected seq 3: 1 record(s) missing (deleted or reordered)"},
	},
	{
		name:   "rotation_delete_middle_file",
		rotate: 1200,
		tamper: func(t *testing.T, dir string) {
			if err := os.Remove(rotatedName(dir, 4)); err != nil {
				t.Fatal(err)
			}
		},
		want: &Problem{File: "audit.jsonl.00000000000000000007", Line: 1, Seq: 7, Reason: "expected seq 4: 3 record(s) missing (deleted or reordered)"},
	},
	{
		name:   "rotation_edit_rotate_record",
		rotate: 1200,
		tamper: func(t *testing.T, dir string) {
			p := rotatedName(dir, 4)
			l := readLines(t, p)
			l[0] = strings.Replace(l[0], "00000000000000000001", "00000000000000000002", 1)
			writeLines(t, p, l)
		},
		want: &Problem{File: "audit.jsonl.00000000000000000004", Line: 1, Seq: 4, Reason: "hash mismatch: record edited (or wrong key)"},
	},
}

func edit(f func([]string) []string) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		p := filepath.Join(dir, "audit.jsonl")
		writeLines(t, p, f(readLines(t, p)))
	}
}

// TestTamper builds a log, tampers with it one way, and checks Verify names
// exactly the first bad record. With -update it also refreshes the golden
// corpus in testdata/verify that TestVerifyCorpus and FuzzVerify use.
func TestTamper(t *testing.T) {
	for _, tc := range tamperCases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			buildLog(t, dir, 10, tc.rotate)
			if tc.tamper != nil {
				tc.tamper(t, dir)
			}
			rep, err := Verify(dir)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			if want != nil {
				want = new(*want)
				want.File = filepath.Join(dir, want.File)
			}
			if diff := cmp.Diff(want, rep.Problem); diff != "" {
				t.Errorf("problem (-want +got):\n%s", diff)
			}
			if tc.want == nil && rep.Records < 10 {
				t.Errorf("records = %d, want >= 10", rep.Records)
			}
			if *update {
				writeCorpusCase(t, tc.name, dir)
			}
		})
	}
}

const corpusDir = "testdata/verify"

func writeCorpusCase(t *testing.T, name, src string) {
	dst := filepath.Join(corpusDir, name)
	if err := os.RemoveAll(dst); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if _, _, ok := splitRotated(e.Name()); !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Verify(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "want.txt"), []byte(rep.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyCorpus runs Verify on every golden case: a directory of log
// files and want.txt, the one-line report expected.
func TestVerifyCorpus(t *testing.T) {
	cases, err := os.ReadDir(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < len(tamperCases) {
		t.Fatalf("%d corpus cases, want %d (run go test -run TestTamper -update)", len(cases), len(tamperCases))
	}
	for _, c := range cases {
		t.Run(c.Name(), func(t *testing.T) {
			dir := filepath.Join(corpusDir, c.Name())
			want, err := os.ReadFile(filepath.Join(dir, "want.txt"))
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Verify(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := rep.String() + "\n"; got != string(want) {
				t.Errorf("report:\n got %s want %s", got, want)
			}
			if strings.HasPrefix(c.Name(), "intact") != rep.OK() {
				t.Errorf("OK = %v for case %s", rep.OK(), c.Name())
			}
		})
	}
}

// TestEveryByteFlipDetected flips each byte of a small log in turn: no
// single-byte change may verify.
func TestEveryByteFlipDetected(t *testing.T) {
	dir := t.TempDir()
	buildLog(t, dir, 3, -1)
	p := filepath.Join(dir, "audit.jsonl")
	orig, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range orig {
		b := append([]byte(nil), orig...)
		b[i] ^= 0x01
		c := newChain(newHasher(nil))
		res, err := c.verifyFile(strings.NewReader(string(b)), "x")
		if err != nil {
			t.Fatal(err)
		}
		if res.problem == nil && res.torn == 0 {
			t.Fatalf("flipping byte %d (%q) went undetected", i, orig[i])
		}
	}
}

// TestTailLimits documents what a bare chain cannot see (whole records cut
// off the end) and shows anchors catching it.
func TestTailLimits(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, nil, Options{})
	appendN(t, l, 0, 10)
	seq, h := l.Head()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "audit.jsonl")
	lines := readLines(t, p)
	writeLines(t, p, lines[:7])

	rep := mustVerify(t, p) // a hash chain alone cannot tell
	if rep.Records != 7 {
		t.Fatalf("records = %d", rep.Records)
	}
	rep, err := VerifyWith(VerifyOptions{Anchors: []Anchor{{Seq: seq, Hash: h}}}, p)
	if err != nil {
		t.Fatal(err)
	}
	want := &Problem{File: p, Line: 7, Reason: "anchor seq 10 is not in the chain (seq 1..7): records truncated from the end or earlier files missing"}
	if diff := cmp.Diff(want, rep.Problem); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// A rewritten record at the anchor is caught too.
	writeLines(t, p, lines)
	rep, err = VerifyWith(VerifyOptions{Anchors: []Anchor{{Seq: 10, Hash: strings.Repeat("0", 64)}}}, p)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problem == nil || rep.Problem.Seq != 10 || !strings.Contains(rep.Problem.Reason, "anchor") {
		t.Errorf("problem = %v", rep.Problem)
	}
}

func TestKeyedChain(t *testing.T) {
	dir := t.TempDir()
	key := []byte("0123456789abcdef0123456789abcdef")
	l := openLog(t, dir, nil, Options{Key: key})
	appendN(t, l, 0, 4)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyWith(VerifyOptions{Key: key}, dir)
	if err != nil || !rep.OK() || rep.Records != 4 {
		t.Fatalf("keyed verify: %v %s", err, rep.String())
	}
	// Without the key (or an attacker recomputing plain SHA-256) it fails.
	rep, err = Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problem == nil || rep.Problem.Line != 1 {
		t.Fatalf("unkeyed verify of keyed log: %s", rep.String())
	}
	// Reopen with the key resumes; with another key Open refuses.
	l = openLog(t, dir, nil, Options{Key: key})
	appendN(t, l, 4, 1)
	l.Close()
	if _, err := OpenWith(config.Audit{Path: filepath.Join(dir, "audit.jsonl")}, "", Options{Key: []byte("other")}); err == nil {
		t.Fatal("Open with the wrong key succeeded")
	}
}

func TestExpand(t *testing.T) {
	dir := t.TempDir()
	buildLog(t, dir, 10, 1200)
	want := []string{rotatedName(dir, 1), rotatedName(dir, 4), rotatedName(dir, 7), rotatedName(dir, 10), filepath.Join(dir, "audit.jsonl")}
	for _, args := range [][]string{{dir}, {filepath.Join(dir, "audit.jsonl*")}} {
		got, err := Expand(args...)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Expand(%v) (-want +got):\n%s", args, diff)
		}
	}
	// A single rotated file verifies as a partial chain.
	rep := mustVerify(t, rotatedName(dir, 4))
	if !rep.Partial || rep.FirstSeq != 4 {
		t.Errorf("partial = %v first = %d", rep.Partial, rep.FirstSeq)
	}
	if _, err := Expand(filepath.Join(dir, "nope*")); err == nil {
		t.Error("glob matching nothing accepted")
	}
	if _, err := Expand(); err == nil {
		t.Error("no paths accepted")
	}
}

// TestParseLineStrict: lines any JSON reader could read differently from
// the verifier are malformed, whatever their hash.
func TestParseLineStrict(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "golden", "full_record.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	good := strings.TrimSuffix(string(b), "\n")
	if _, err := parseLine([]byte(good)); err != nil {
		t.Fatalf("golden line: %v", err)
	}
	cases := map[string]string{
		"duplicate seq":        strings.Replace(good, `"time"`, `"seq":2,"time"`, 1),
		"case variant of seq":  strings.Replace(good, `"time"`, `"Seq":2,"time"`, 1),
		"escaped name":         strings.Replace(good, `"request_id"`, `"request\u005fid"`, 1),
		"duplicate nested key": strings.Replace(good, `"tool":"search"`, `"tool":"search","tool":"x"`, 1),
		"invalid UTF-8":        strings.Replace(good, "é", "\xff", 1),
		"no event":             strings.Replace(good, `"event":"decision",`, ``, 1),
		"bad event":            strings.Replace(good, `"event":"decision"`, `"event":"Decision"`, 1),
		"seq float":            strings.Replace(good, `"seq":1`, `"seq":1.0`, 1),
		"seq zero":             strings.Replace(good, `"seq":1`, `"seq":0`, 1),
		"seq string":           strings.Replace(good, `"seq":1`, `"seq":"1"`, 1),
		"prev upper hex":       strings.Replace(good, `"prev":"0000`, `"prev":"A000`, 1),
		"bad time":             strings.Replace(good, `"time":"2026`, `"time":"x2026`, 1),
		"array":                "[" + good[1:len(good)-1] + "]",
		"trailing data":        good + ` {}`,
		"not closed":           good[:len(good)-1],
	}
	for name, line := range cases {
		if _, err := parseLine([]byte(line)); err == nil {
			t.Errorf("%s: accepted %s", name, line)
		}
	}
}
