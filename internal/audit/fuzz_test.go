package audit

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/wardenhq/warden/internal/jsonstrict"
)

// FuzzVerify feeds arbitrary files to the verifier, which parses untrusted
// input: it must never panic, and whatever it accepts must be fully
// accounted for (every complete line a verified record).
func FuzzVerify(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join(corpusDir, "*", "audit.jsonl*"))
	golden, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.jsonl"))
	for _, p := range append(seeds, golden...) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	if len(seeds) == 0 {
		f.Fatal("no seeds in testdata")
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := newChain(newHasher(nil))
		res, err := c.verifyFile(bytes.NewReader(data), "fuzz")
		if err != nil {
			t.Fatal(err)
		}
		if res.problem != nil {
			if res.problem.Line < 1 || res.problem.Line > res.lines+1 {
				t.Fatalf("problem line %d of %d", res.problem.Line, res.lines)
			}
			return
		}
		// Differential: every line the verifier accepted, the shared strict
		// parser accepts with the same seq and event.
		for _, line := range bytes.SplitAfter(data[:res.good], []byte{'\n'}) {
			if len(line) == 0 {
				continue
			}
			p, _ := parseLine(line[:len(line)-1])
			m, err := jsonstrict.ParseMembers(line[:len(line)-1], jsonstrict.Options{MaxBytes: MaxLineBytes + 1}, "seq", "event")
			if err != nil || m["seq"] != jsonstrict.Number(strconv.FormatUint(p.seq, 10)) || m["event"] != p.event {
				t.Fatalf("verifier accepted %q; jsonstrict: %v %v", line, m, err)
			}
		}
		if int64(res.lines) != c.records || res.good+res.torn != int64(len(data)) {
			t.Fatalf("accepted %d lines as %d records, %d+%d of %d bytes", res.lines, c.records, res.good, res.torn, len(data))
		}
	})
}
