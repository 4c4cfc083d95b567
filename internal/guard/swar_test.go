package guard

import (
	"math/rand"
	"testing"
)

// TestSWAR checks the word tests against byte loops: every byte value in
// every position, over random and uniform backgrounds (hasZeroByte's
// borrow is the case a background of zeros and ones exercises).
func TestSWAR(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	backgrounds := []uint64{0, lo8, 0xFFFFFFFFFFFFFFFF, hi8, lo8 * 'a', lo8 * 0x30}
	for range 200 {
		backgrounds = append(backgrounds, rng.Uint64())
	}
	for _, bg := range backgrounds {
		for pos := 0; pos < 8; pos++ {
			for v := 0; v < 256; v++ {
				w := bg&^(0xFF<<(8*pos)) | uint64(v)<<(8*pos)
				var b [8]byte
				for k := range b {
					b[k] = byte(w >> (8 * k))
				}
				var zero, plus, digit, num, lt bool
				for _, c := range b {
					zero = zero || c == 0
					plus = plus || c == '+'
					digit = digit || isDigit(c)
					num = num || numberStart[c]
					lt = lt || leet[c] != 0
				}
				if hasZeroByte(w) != zero || hasByte(w, '+') != plus || hasBetween(w, '0'-1, '9'+1) != digit {
					t.Fatalf("%#x: zero %v plus %v digit %v", w, zero, plus, digit)
				}
				if mayStartNumber(w) != num {
					t.Fatalf("%#x: mayStartNumber %v, want %v", w, mayStartNumber(w), num)
				}
				if lt && !mayLeet(w) {
					t.Fatalf("%#x: mayLeet false with a leet byte", w)
				}
				if load64(string(b[:]), 0) != w || load64b(b[:], 0) != w {
					t.Fatalf("%#x: load64", w)
				}
			}
		}
	}
}
