package jsonstrict

import (
	"os"
	"testing"
)

// BenchmarkParseMarshal16K is the per-request cost of the strict layer on a
// 16 KiB chat request: parse, then canonical re-encode.
func BenchmarkParseMarshal16K(b *testing.B) {
	doc, err := os.ReadFile("testdata/chat16k.json")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	buf := make([]byte, 0, len(doc))
	for b.Loop() {
		v, err := Parse(doc, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if buf, err = AppendMarshal(buf[:0], v); err != nil {
			b.Fatal(err)
		}
	}
}
