package guard

import (
	"slices"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// normText is the folded view of a text the injection rules match against:
// compatibility-decomposed (NFKD, which subsumes NFKC's folding for
// matching), combining marks dropped, lowercased, confusable Cyrillic/Greek
// letters folded to Latin, leetspeak undone inside words, invisible
// characters removed and whitespace runs collapsed. off maps each byte of s
// back to the byte offset in the original of the rune it came from;
// off[len(s)] is the original length.
type normText struct {
	s   []byte
	off []int32
	// invisible runs found while folding, in original offsets.
	hidden []hiddenRun
}

// hiddenRun is a run of invisible characters of one kind.
type hiddenRun struct {
	kind       string // "tag", "bidi", "zero_width", "variation_selector", "private_use", "control"
	start, end int
	n          int
	// tagText is the ASCII the Unicode tag characters spell (ASCII smuggling).
	tagText []byte
	// afterFlag: the run follows U+1F3F4, the one legitimate use of tags
	// (subdivision flag emoji).
	afterFlag bool
}

// confusables folds the Cyrillic and Greek letters that look like Latin ones
// (a subset of Unicode's confusables.txt: the lowercase letters attackers
// use to dodge keyword filters). Applied after lowercasing.
var confusables = map[rune]rune{
	'а': 'a', 'в': 'b', 'е': 'e', 'ё': 'e', 'к': 'k', 'м': 'm', 'н': 'h', 'о': 'o', 'р': 'p', 'с': 'c',
	'т': 't', 'у': 'y', 'х': 'x', 'ѕ': 's', 'і': 'i', 'ї': 'i', 'ј': 'j', 'ԁ': 'd', 'ɡ': 'g', 'һ': 'h',
	'ԛ': 'q', 'ԝ': 'w', 'ᴠ': 'v', 'ɑ': 'a', 'ı': 'i', 'ɩ': 'i', 'ℓ': 'l', 'ο': 'o', 'α': 'a', 'ε': 'e',
	'ι': 'i', 'κ': 'k', 'ν': 'v', 'ρ': 'p', 'τ': 't', 'υ': 'u', 'χ': 'x', 'γ': 'y', 'ω': 'w', 'β': 'b',
	'η': 'n', 'μ': 'u', 'ӏ': 'l', 'ǀ': 'l', 'ꞵ': 'b',
}

// leet undoes the common digit/symbol-for-letter substitutions. It is
// applied only to a character touching an ASCII letter, so "3 rules" and
// "$5" stay as they are while "1gn0r3" and "pr3v10us" fold.
var leet = [256]byte{'0': 'o', '1': 'i', '3': 'e', '4': 'a', '5': 's', '7': 't', '@': 'a', '$': 's', '!': 'i', '|': 'l'}

func classifyInvisible(r rune) string {
	switch {
	case r >= 0xE0000 && r <= 0xE007F:
		return "tag"
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, r == 0x200E, r == 0x200F, r == 0x061C:
		return "bidi"
	case r == 0x200B, r == 0x200C, r == 0x200D, r == 0x2060, r == 0xFEFF, r == 0x180E, r == 0x00AD,
		r >= 0x2061 && r <= 0x2064:
		return "zero_width"
	case r >= 0xFE00 && r <= 0xFE0F, r >= 0xE0100 && r <= 0xE01EF:
		return "variation_selector"
	case unicode.Is(unicode.Co, r):
		return "private_use"
	case r == '\t' || r == '\n' || r == '\r':
		return ""
	case unicode.Is(unicode.Cc, r), unicode.Is(unicode.Cf, r):
		return "control"
	}
	return ""
}

// normalize folds text into a normText. It allocates two slices sized to the
// input and is linear in it.
func normalize(text string) *normText {
	n := &normText{}
	n.fold(text)
	return n
}

var normPool = sync.Pool{New: func() any { return new(normText) }}

// getNorm is normalize with the buffers of an earlier, released normText;
// release it with putNorm once nothing refers to its slices.
func getNorm(text string) *normText {
	n := normPool.Get().(*normText)
	n.fold(text)
	return n
}

func putNorm(n *normText) {
	if cap(n.off) > 1<<20 {
		return // one huge text should not pin its buffers
	}
	normPool.Put(n)
}

// printable is the bytes of the fold's hot path: printable ASCII but the
// space.
var printable = func() (t [256]bool) {
	for c := '!'; c < 0x7f; c++ {
		t[c] = true
	}
	return t
}()

// fold sets n to the folded view of text, reusing n's buffers.
func (n *normText) fold(text string) {
	n.s = n.s[:0]
	n.off = n.off[:0]
	n.hidden = n.hidden[:0]
	if cap(n.s) < len(text)+8 {
		n.s = make([]byte, 0, len(text)+8)
	}
	if cap(n.off) < len(text)+9 {
		n.off = make([]int32, 0, len(text)+9)
	}
	var lastSpace bool // last emitted byte is a collapsed space or newline
	var prev rune
	for i := 0; i < len(text); {
		c := text[i]
		if printable[c] {
			// Hot path: a run of printable ASCII with single spaces
			// between words (what the slow path would make of them:
			// a space after a printable byte is kept as it is), folded
			// into the buffers in one pass.
			j := i + 1
			for j < len(text) {
				if printable[text[j]] {
					j++
					continue
				}
				if text[j] == ' ' && j+1 < len(text) && printable[text[j+1]] {
					j += 2
					continue
				}
				break
			}
			src := text[i:j]
			base := len(n.s)
			n.s = slices.Grow(n.s, len(src))
			n.off = slices.Grow(n.off, len(src))
			n.s = n.s[:base+len(src)]
			n.off = n.off[:base+len(src)]
			dst := n.s[base:][:len(src)]
			off := n.off[base:][:len(src)]
			for k := 0; k < len(src); k++ {
				dst[k] = lowerASCII[src[k]]
				off[k] = int32(i + k)
			}
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
}

func (n *normText) emit(r rune, at int) {
	r = unicode.ToLower(r)
	if f, ok := confusables[r]; ok {
		r = f
	}
	if r < utf8.RuneSelf {
		n.s = append(n.s, byte(r))
		n.off = append(n.off, int32(at))
		return
	}
	before := len(n.s)
	n.s = utf8.AppendRune(n.s, r)
	for range len(n.s) - before {
		n.off = append(n.off, int32(at))
	}
}

// space collapses a whitespace run into one byte: '\n' if the run holds a
// line break (the delimiter rules anchor on lines), else ' '.
func (n *normText) space(newline bool, at int, lastSpace *bool) {
	if *lastSpace {
		if newline {
			n.s[len(n.s)-1] = '\n'
		}
		return
	}
	b := byte(' ')
	if newline {
		b = '\n'
	}
	n.s = append(n.s, b)
	n.off = append(n.off, int32(at))
	*lastSpace = true
}

func (n *normText) markHidden(kind string, at, size int, r rune, prev rune) {
	if k := len(n.hidden); k > 0 {
		h := &n.hidden[k-1]
		if h.kind == kind && h.end == at {
			h.end = at + size
			h.n++
			if kind == "tag" && r >= 0xE0020 && r <= 0xE007E && len(h.tagText) < 4096 {
				h.tagText = append(h.tagText, byte(r-0xE0000))
			}
			return
		}
	}
	h := hiddenRun{kind: kind, start: at, end: at + size, n: 1, afterFlag: kind == "tag" && prev == 0x1F3F4}
	if kind == "tag" && r >= 0xE0020 && r <= 0xE007E {
		h.tagText = append(h.tagText, byte(r-0xE0000))
	}
	if len(n.hidden) < 1024 {
		n.hidden = append(n.hidden, h)
	}
}

func isLower(b byte) bool { return 'a' <= b && b <= 'z' }

// unleet folds leetspeak in place (same length, so offsets stay valid). A
// substitute is folded when it touches a letter or another substitute that
// touches one: "1gn0r3" → "ignore", "h4x0r" → "haxor", "2024" stays.
func (n *normText) unleet() {
	s := n.s
	swarFrom := 0 // a word test failed before this: go byte by byte
	for i := 0; i < len(s); i++ {
		if i >= swarFrom {
			for i+8 <= len(s) && !mayLeet(load64b(s, i)) {
				i += 8
			}
			swarFrom = i + 8
			if i >= len(s) {
				break
			}
		}
		if leet[s[i]] == 0 || s[i] == '!' && i+1 < len(s) && s[i+1] == '[' {
			continue
		}
		// find the run of substitutes
		j := i
		for j < len(s) && leet[s[j]] != 0 {
			j++
		}
		left := i > 0 && isLower(s[i-1])
		right := j < len(s) && isLower(s[j])
		// A run needs a letter on at least one side, and a run of only
		// digits needs letters on both sides or a letter and length one, so
		// "v2", "sha256" and "a1b2" style ids keep most of their digits.
		allDigits := true
		for k := i; k < j; k++ {
			if s[k] < '0' || s[k] > '9' {
				allDigits = false
			}
		}
		ok := (left && right) || ((left || right) && (!allDigits || j-i == 1))
		// Punctuation-like substitutes ('!', '|', '$', '@') fold only inside
		// a word: "hello!" and "a | b" stay.
		if ok && !(left && right) {
			for k := i; k < j; k++ {
				if s[k] == '!' || s[k] == '|' || s[k] == '$' || s[k] == '@' {
					ok = false
				}
			}
		}
		if ok {
			for k := i; k < j; k++ {
				s[k] = leet[s[k]]
			}
		}
		i = j
	}
}

// span maps a [a,b) range of the folded text back to the original.
func (n *normText) span(a, b int) (int, int) {
	if b <= a {
		return int(n.off[a]), int(n.off[a])
	}
	// end: the original offset just past the rune that produced byte b-1.
	end := int(n.off[b])
	last := int(n.off[b-1])
	if end <= last {
		end = last + 1
	}
	return int(n.off[a]), end
}
