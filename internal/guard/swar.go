package guard

import "encoding/binary"

// Eight bytes at a time ("SIMD within a register", Bit Twiddling Hacks):
// the byte loops that look for rare bytes (digits, leetspeak substitutes)
// test a word first and skip it when no byte of it can matter. Each test
// is exact per byte (no carry or borrow crosses bytes, or, for
// hasZeroByte, the answer is exact as a whole), which TestSWAR checks on
// every byte value in every position.

const (
	lo8 = 0x0101010101010101
	hi8 = 0x8080808080808080
)

// hasZeroByte reports whether some byte of w is zero.
func hasZeroByte(w uint64) bool { return (w-lo8)&^w&hi8 != 0 }

// hasByte reports whether some byte of w is c.
func hasByte(w uint64, c byte) bool { return hasZeroByte(w ^ lo8*uint64(c)) }

// hasBetween reports whether some byte b of w has m < b < n; m and n at
// most 127 and 128.
func hasBetween(w uint64, m, n byte) bool {
	t := w &^ hi8
	return (lo8*(127+uint64(n))-t)&^w&(t+lo8*(127-uint64(m)))&hi8 != 0
}

func load64(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func load64b(s []byte, i int) uint64 { return binary.LittleEndian.Uint64(s[i:]) }

// mayStartNumber: some byte of w is in numberStart (a digit, '+' or '(').
func mayStartNumber(w uint64) bool {
	return hasBetween(w, '0'-1, '9'+1) || hasByte(w, '+') || hasByte(w, '(')
}

// mayLeet: some byte of w may have a leet substitute (a digit, '@', '$',
// '!' or '|'; a superset of leet's keys).
func mayLeet(w uint64) bool {
	return hasBetween(w, '0'-1, '9'+1) || hasBetween(w, ' ', '%') || hasByte(w, '@') || hasByte(w, '|')
}
