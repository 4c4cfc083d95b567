package scan

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seedFromGolden adds every file under testdata/scan whose name satisfies
// keep as a seed.
func seedFromGolden(f *testing.F, keep func(string) bool) {
	n := 0
	_ = filepath.WalkDir(goldenRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !keep(p) {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil {
			f.Add(b)
			n++
		}
		return nil
	})
	if n == 0 {
		f.Fatal("no seeds")
	}
}

// FuzzScanManifests feeds arbitrary bytes through the YAML loader and every
// rule: no panic, every object accounted for, errors carry a file name.
func FuzzScanManifests(f *testing.F) {
	seedFromGolden(f, func(p string) bool {
		return strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".json")
	})
	s, err := New(context.Background(), Config{}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res := s.ScanReader(context.Background(), bytes.NewReader(data), "fuzz.yaml")
		for _, e := range res.Errors {
			if e.File != "fuzz.yaml" || e.Err == nil {
				t.Fatalf("bad error %+v", e)
			}
		}
		for _, fd := range res.Findings {
			if fd.RuleID == "" || fd.File != "fuzz.yaml" {
				t.Fatalf("bad finding %+v", fd)
			}
		}
	})
}

// FuzzDockerfile checks the Dockerfile path (buildkit parser + Rego).
func FuzzDockerfile(f *testing.F) {
	seedFromGolden(f, func(p string) bool { return isDockerfileName(filepath.Base(p)) })
	s, err := New(context.Background(), Config{}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ss := s.newSession(context.Background())
		ss.scanDockerfile(bytes.NewReader(data), "Dockerfile")
		res := ss.finish()
		for _, fd := range res.Findings {
			if !strings.HasPrefix(fd.RuleID, "DF") {
				t.Fatalf("unexpected rule %s", fd.RuleID)
			}
		}
	})
}

// FuzzConfig: strict decoding never panics and accepted configs validate.
func FuzzConfig(f *testing.F) {
	seedFromGolden(f, func(p string) bool { return filepath.Base(p) == "config.yaml" })
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err == nil && cfg.Validate() != nil {
			t.Fatal("ParseConfig accepted an invalid config")
		}
	})
}
