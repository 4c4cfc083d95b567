package jsonstrict

import (
	"bytes"
	"testing"
)

// FuzzParse checks that Parse never panics and that for every accepted
// document Parse→Marshal→Parse is a fixed point.
func FuzzParse(f *testing.F) {
	for _, c := range loadCorpus(f) {
		f.Add(c.doc)
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		v, err := Parse(doc, Options{})
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("Parse error %T is not *Error", err)
			}
			return
		}
		b, err := Marshal(v)
		if err != nil {
			t.Fatalf("Marshal of parsed tree: %v", err)
		}
		v2, err := Parse(b, Options{})
		if err != nil {
			t.Fatalf("reparse: %v", err)
		}
		b2, err := Marshal(v2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatalf("not a fixed point:\n%q\n%q", b, b2)
		}
	})
}
