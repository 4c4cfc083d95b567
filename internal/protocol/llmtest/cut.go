package llmtest

import (
	"io"
	"unicode/utf8"
)

// CutDeltas cuts reply into deltas at the places cuts choose (each byte, mod
// what is left, is the length of the next delta, moved forward to a rune
// boundary: a delta is a JSON string), the rest being the last delta. For
// fuzzing stream filters with arbitrary cuts.
func CutDeltas(reply string, cuts []byte) []string {
	var deltas []string
	rest := reply
	for _, c := range cuts {
		n := int(c) % (len(rest) + 1)
		for n < len(rest) && !utf8.RuneStart(rest[n]) {
			n++
		}
		deltas = append(deltas, rest[:n])
		rest = rest[n:]
	}
	return append(deltas, rest)
}

// ChunkedReader returns a reader that yields at most n bytes per Read, as
// a network would (n < 1 means 1).
func ChunkedReader(b []byte, n int) io.Reader { return &chunked{b: b, n: max(n, 1)} }

type chunked struct {
	b []byte
	n int
}

func (r *chunked) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n, len(r.b))
	copy(p, r.b[:k])
	r.b = r.b[k:]
	return k, nil
}
