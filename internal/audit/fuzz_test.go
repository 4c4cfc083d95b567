package audit

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
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
		res, err := c.verifyFile(bytes.NewReader(data), "fuzz", true)
		if err != nil {
			t.Fatal(err)
		}
		if res.problem != nil {
			if res.problem.Line < 1 || res.problem.Line > res.lines+1 {
				t.Fatalf("problem line %d of %d", res.problem.Line, res.lines)
			}
			return
		}
		if int64(res.lines) != c.records || res.good+res.torn != int64(len(data)) {
			t.Fatalf("accepted %d lines as %d records, %d+%d of %d bytes", res.lines, c.records, res.good, res.torn, len(data))
		}
	})
}
