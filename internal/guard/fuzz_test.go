package guard

import (
	"bytes"
	"context"
	"os"
	"testing"
	"unicode/utf8"
)

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seedCases(f *testing.F) {
	for _, p := range caseFiles(f) {
		f.Add(string(mustRead(f, p)))
	}
}

// FuzzScan checks the scanner's invariants on any input: no panic, spans
// inside the text and on rune boundaries of valid UTF-8, scores in [0,1],
// Redact total.
func FuzzScan(f *testing.F) {
	seedCases(f)
	s, err := New(Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		r := s.Scan(context.Background(), text, ContextToolOutput)
		for _, fd := range r.Findings {
			if fd.Start < 0 || fd.End > len(text) || fd.Start > fd.End {
				t.Fatalf("span out of range: %+v (len %d)", fd, len(text))
			}
			if fd.Score < 0 || fd.Score > 1 {
				t.Fatalf("score out of range: %+v", fd)
			}
			if utf8.ValidString(text) && (!utf8.ValidString(text[:fd.Start]) || !utf8.ValidString(text[fd.End:])) {
				t.Fatalf("span splits a rune: %+v", fd)
			}
		}
		_ = Redact(text, r.Findings)
		_ = r.PolicyInput()
	})
}

// FuzzNormalize checks the folded view's offset map: monotonic, inside the
// original, one entry per folded byte plus the end.
func FuzzNormalize(f *testing.F) {
	seedCases(f)
	f.Fuzz(func(t *testing.T, text string) {
		n := normalize(text)
		if len(n.off) != len(n.s)+1 || int(n.off[len(n.s)]) != len(text) {
			t.Fatalf("offset map length %d for %d folded bytes", len(n.off), len(n.s))
		}
		for i := 1; i < len(n.off); i++ {
			if n.off[i] < n.off[i-1] || int(n.off[i]) > len(text) {
				t.Fatalf("offset map not monotonic at %d: %v", i, n.off)
			}
		}
	})
}

// FuzzDecode checks the payload decoders: no panic, and anything they
// return is readable UTF-8.
func FuzzDecode(f *testing.F) {
	seedCases(f)
	f.Add("%41%42%43%44")
	f.Add(`\x41\x42\x43\x44\x45`)
	f.Add("&#65;&#66;&#67;&#68;")
	f.Fuzz(func(t *testing.T, tok string) {
		for _, dec := range []func(string) (string, string, bool){decodeToken, decodeEscaped} {
			if out, _, ok := dec(tok); ok && !readable([]byte(out)) {
				t.Fatalf("decoder returned unreadable %q", out)
			}
		}
	})
}

// FuzzStreamRedactor checks that streaming in any two chunks is total and
// emits every byte of clean input unchanged.
func FuzzStreamRedactor(f *testing.F) {
	seedCases(f)
	s, err := New(Config{StreamWindow: 32})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		cut := len(text) / 3
		r := s.NewStreamRedactor(ContextResponse)
		var out bytes.Buffer
		out.Write(r.Write([]byte(text[:cut])))
		out.Write(r.Write([]byte(text[cut:])))
		out.Write(r.Flush())
		full := s.Scan(context.Background(), text, ContextResponse)
		if len(Redactable(full.Findings)) == 0 && r.totalFound() == 0 && out.String() != text {
			t.Fatalf("clean text changed:\n got %q\nwant %q", out.String(), text)
		}
	})
}
