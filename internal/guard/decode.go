package guard

import (
	"encoding/base64"
	"encoding/hex"
	"html"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Encoded payloads: base64 (std and URL alphabets), hex (plain and \x
// escapes), percent-encoding, HTML character references and rot13 are
// decoded and the result re-scanned with every detector, up to
// MaxDecodeDepth levels and MaxDecodedBytes in total. Findings inside a
// payload are reported on the span of the encoded token: prompt injection as
// "pi.encoded.<encoding>", secrets and PII under their own rule ids so the
// token is redacted whole.

const minEncodedLen = 16

// scanEncoded finds encoded tokens in text and re-scans what they decode to.
func (s *Scanner) scanEncoded(st *scan, text string, depth int) {
	if depth >= s.cfg.MaxDecodeDepth {
		return
	}
	candidates := 0
	for i := 0; i < len(text); {
		if st.overBudget || candidates > 256 {
			return
		}
		c := text[i]
		switch {
		case c == '%' || c == '&' || (c == '\\' && i+1 < len(text) && text[i+1] == 'x'):
			// escape-style encodings: take the whole non-space token
			j := i
			for j < len(text) && !isSpaceByte(text[j]) {
				j++
			}
			a := i
			for a > 0 && !isSpaceByte(text[a-1]) && i-a < 256 {
				a--
			}
			tok := text[a:j]
			if dec, enc, ok := decodeEscaped(tok); ok {
				candidates++
				s.rescanDecoded(st, dec, a, j, depth, "pi.encoded."+enc)
			}
			i = j
		case b64Byte[c]:
			j := i + 1
			for j < len(text) && b64Byte[text[j]] {
				j++
			}
			for j < len(text) && text[j] == '=' {
				j++
			}
			if j-i >= minEncodedLen && (i == 0 || !isWordByte(text[i-1])) {
				if dec, enc, ok := decodeToken(text[i:j]); ok {
					candidates++
					s.rescanDecoded(st, dec, i, j, depth, "pi.encoded."+enc)
				}
			}
			i = j
		default:
			i++
		}
	}
	// The injection pass counted words that are rot13 of trigger stems.
	if st.rot13 >= 2 {
		s.rescanDecoded(st, rot13(text), 0, len(text), depth, "pi.encoded.rot13")
	}
}

func isSpaceByte(c byte) bool {
	return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '"' || c == '\'' || c == '<' || c == '>' || c == '(' || c == ')'
}

func isWordByte(c byte) bool { return c == '.' || c == '@' || c == ':' }

func isB64Byte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '-' || c == '_'
}

// b64Byte is isB64Byte as a table, for scanEncoded's loop.
var b64Byte = func() (t [256]bool) {
	for c := range t {
		t[c] = isB64Byte(byte(c))
	}
	return t
}()

// decodeToken tries hex, then base64, on a token of base64-alphabet bytes.
func decodeToken(tok string) (string, string, bool) {
	if len(tok)%2 == 0 && isHex(tok) {
		b, err := hex.DecodeString(tok)
		if err == nil && readable(b) {
			return string(b), "hex", true
		}
		return "", "", false
	}
	// Prose words and paths rarely reach 16 bytes of the alphabet with
	// both cases or digits; require some mix before paying for a decode.
	if !mixed(tok) {
		return "", "", false
	}
	t := strings.TrimRight(tok, "=")
	var enc *base64.Encoding
	if strings.ContainsAny(t, "-_") {
		if strings.ContainsAny(t, "+/") {
			return "", "", false
		}
		enc = base64.RawURLEncoding
	} else {
		enc = base64.RawStdEncoding
	}
	if len(t)%4 == 1 {
		return "", "", false
	}
	b, err := enc.DecodeString(t)
	if err != nil || !readable(b) {
		return "", "", false
	}
	return string(b), "base64", true
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func mixed(s string) bool {
	var up, low, dig bool
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z':
			up = true
		case 'a' <= c && c <= 'z':
			low = true
		case '0' <= c && c <= '9':
			dig = true
		}
	}
	return (up && low) || (dig && (up || low))
}

// readable reports whether b looks like text worth re-scanning: valid UTF-8,
// at least 8 bytes, and at least 85% letters, digits, punctuation or spaces.
func readable(b []byte) bool {
	if len(b) < 8 || !utf8.Valid(b) {
		return false
	}
	good, total := 0, 0
	for _, r := range string(b) {
		total++
		if unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsSpace(r) || unicode.IsPunct(r) || unicode.IsSymbol(r) {
			good++
		}
	}
	return good*100 >= total*85
}

// decodeEscaped undoes percent-encoding, HTML character references or \x
// escapes when a token holds at least three of them.
func decodeEscaped(tok string) (string, string, bool) {
	switch {
	case strings.Count(tok, `\x`) >= 4:
		var b []byte
		for i := 0; i < len(tok); {
			if i+3 < len(tok) && tok[i] == '\\' && tok[i+1] == 'x' && isHex(tok[i+2:i+4]) {
				v, _ := hex.DecodeString(tok[i+2 : i+4])
				b = append(b, v[0])
				i += 4
				continue
			}
			b = append(b, tok[i])
			i++
		}
		if readable(b) {
			return string(b), "hex", true
		}
	case strings.Count(tok, "%") >= 3:
		d, err := url.QueryUnescape(tok)
		if err == nil && d != tok && readable([]byte(d)) {
			return d, "url", true
		}
	case strings.Count(tok, "&#") >= 3 || strings.Count(tok, "&") >= 3 && strings.Count(tok, ";") >= 3:
		d := html.UnescapeString(tok)
		if d != tok && readable([]byte(d)) {
			return d, "html_entities", true
		}
	}
	return "", "", false
}

// rot13Stems are folded trigger stems whose rot13 form in a text suggests
// the text is rot13 of an injection. They sit in the trigger index, so the
// check costs nothing beyond the trigger pass.
var rot13Stems = []string{"ignor", "disre", "instr", "previ", "syste", "promp", "forge", "bypas", "overr"}

func rot13(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z':
			b[i] = 'a' + (c-'a'+13)%26
		case 'A' <= c && c <= 'Z':
			b[i] = 'A' + (c-'A'+13)%26
		}
	}
	return string(b)
}

// rescanDecoded scans decoded (the payload of original[start:end]) one level
// deeper and reports what it finds on [start,end).
func (s *Scanner) rescanDecoded(st *scan, decoded string, start, end, depth int, piRule string) {
	if st.decoded+len(decoded) > s.cfg.MaxDecodedBytes {
		st.overBudget = true
		return
	}
	st.decoded += len(decoded)
	inner := &scan{s: s, ctx: st.ctx, c: st.c, decoded: st.decoded}
	s.scanInto(inner, decoded, depth+1)
	st.decoded = inner.decoded
	if inner.overBudget {
		st.overBudget = true
	}
	var piBest float64
	for _, f := range inner.findings {
		if f.Category == CategoryPromptInjection {
			piBest = max(piBest, f.Score)
			continue
		}
		f.Start, f.End = start, end
		st.add(f)
	}
	if piBest > 0 {
		// Hiding instructions in an encoding is itself a signal.
		st.add(Finding{Category: CategoryPromptInjection, Rule: piRule, Score: round3(min(1, piBest+0.05)), Start: start, End: end})
	}
}
