package guard

import (
	"bytes"
	"context"
	"os"
	"reflect"
	"slices"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
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
	reused := &normText{}
	f.Fuzz(func(t *testing.T, text string) {
		n := normalize(text)
		want := normalizeRef(text)
		reused.fold("An Earlier\u200b text,\U000E0041\U000E0042 longer than most inputs of the fuzzer: " + text + text)
		reused.fold(text)
		for _, got := range []*normText{n, reused} {
			if !bytes.Equal(got.s, want.s) || !slices.Equal(got.off, want.off) || !reflect.DeepEqual(slices.Clip(got.hidden), slices.Clip(want.hidden)) && len(got.hidden)+len(want.hidden) > 0 {
				t.Fatalf("fold differs from the reference:\n got %q %v %+v\nwant %q %v %+v", got.s, got.off, got.hidden, want.s, want.off, want.hidden)
			}
		}
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

// normalizeRef is normalize before its hot path took spaces between words
// and wrote into reused buffers, kept to fuzz the two against each other.
func normalizeRef(text string) *normText {
	n := &normText{
		s:   make([]byte, 0, len(text)+8),
		off: make([]int32, 0, len(text)+9),
	}
	var lastSpace bool // last emitted byte is a collapsed space or newline
	var prev rune
	for i := 0; i < len(text); {
		c := text[i]
		if c > ' ' && c < 0x7f {
			// Hot path: a run of printable ASCII, folded with local slices.
			s, off := n.s, n.off
			j := i
			for ; j < len(text); j++ {
				c := text[j]
				if c <= ' ' || c >= 0x7f {
					break
				}
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				s = append(s, c)
				off = append(off, int32(j))
			}
			n.s, n.off = s, off
			lastSpace = false
			prev = rune(text[j-1])
			i = j
			continue
		}
		if c < utf8.RuneSelf {
			switch {
			case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
				n.space(c == '\n', i, &lastSpace)
			case c < 0x20 || c == 0x7f:
				n.markHidden("control", i, 1, 0, prev)
			default:
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				n.s = append(n.s, c)
				n.off = append(n.off, int32(i))
				lastSpace = false
			}
			prev = rune(c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		if kind := classifyInvisible(r); kind != "" {
			n.markHidden(kind, i, size, r, prev)
			if kind != "variation_selector" && kind != "tag" {
				prev = r
			}
			i += size
			continue
		}
		prev = r
		if unicode.IsSpace(r) {
			n.space(r == 0x2028 || r == 0x2029 || r == 0x85, i, &lastSpace)
			i += size
			continue
		}
		lastSpace = false
		if d := norm.NFKD.PropertiesString(text[i:]).Decomposition(); d != nil {
			for _, dr := range string(d) {
				if unicode.Is(unicode.Mn, dr) {
					continue
				}
				n.emit(dr, i)
			}
		} else if !unicode.Is(unicode.Mn, r) {
			n.emit(r, i)
		}
		i += size
	}
	n.off = append(n.off, int32(len(text)))
	n.unleet()
	return n
}
