package sse

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

// FuzzReader checks the Reader never panics, gives the same result however
// the input is split into reads, and that canonical re-encoding of what it
// read reads back identically.
func FuzzReader(f *testing.F) {
	files, _ := filepath.Glob("testdata/corpus/*.sse")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		opt := ReaderOptions{Comments: true, MaxLine: 4096, MaxEvent: 8192}
		whole := readAll(bytes.NewReader(in), opt)
		split := readAll(iotest.OneByteReader(bytes.NewReader(in)), opt)
		if d := cmp.Diff(whole, split); d != "" {
			t.Fatalf("one-byte reads differ (-whole +split):\n%s", d)
		}
		checkReencode(t, whole.Events)
	})
}
