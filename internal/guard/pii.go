package guard

import (
	"net/netip"
	"strings"
)

// PII detectors are hand-written scanners rather than regexps: each one
// anchors on a cheap byte (a digit, '@', ':'), then validates with the
// identifier's own checksum where one exists (Luhn for cards, ISO 13616
// mod-97 for IBANs, mod-11 for Brazilian CPF, mod-23 for Spanish DNI, the
// SSA's invalid ranges for US SSNs), which is what keeps false positives
// low on ordinary numbers in code and prose.

// PII scores: checksummed identifiers are near-certain, formats without a
// checksum less so.
const (
	scoreCard   = 0.9
	scoreIBAN   = 0.9
	scoreSSN    = 0.8
	scoreIDChk  = 0.8
	scoreEmail  = 0.6
	scorePhone  = 0.5
	scoreIPPub  = 0.4
	scoreIPPriv = 0.2
)

func scanPII(st *scan, text string) {
	scanEmails(st, text)
	if st.expired() {
		return
	}
	scanNumbers(st, text)
	if st.expired() {
		return
	}
	scanIBANs(st, text)
	scanIPv6(st, text)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// numberStart is the bytes a digit group may start with.
var numberStart = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['+'], t['('] = true, true
	return t
}()

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }

func isLocalByte(c byte) bool {
	return isAlnum(c) || strings.IndexByte(".!#$%&'*+/=?^_`{|}~-", c) >= 0
}

func isDomainByte(c byte) bool { return isAlnum(c) || c == '-' || c == '.' }

// scanEmails finds addr-spec-like emails: local@domain.tld with an
// alphabetic TLD of two or more letters.
func scanEmails(st *scan, text string) {
	for i := 0; i < len(text); {
		k := strings.IndexByte(text[i:], '@')
		if k < 0 {
			return
		}
		at := i + k
		i = at + 1
		a := at
		for a > 0 && at-a < 64 && isLocalByte(text[a-1]) {
			a--
		}
		for a < at && (text[a] == '.' || text[a] == '\'') {
			a++
		}
		if a == at || (a > 0 && text[a-1] == ':' && strings.Contains(text[max(0, a-140):a], "://")) {
			// no local part, or the password@host of a URL's userinfo
			continue
		}
		b := at + 1
		for b < len(text) && b-at < 255 && isDomainByte(text[b]) {
			b++
		}
		for b > at+1 && (text[b-1] == '.' || text[b-1] == '-') {
			b--
		}
		dom := text[at+1 : b]
		dot := strings.LastIndexByte(dom, '.')
		if dot <= 0 || len(dom)-dot-1 < 2 {
			continue
		}
		tld := dom[dot+1:]
		okTLD := true
		for j := 0; j < len(tld); j++ {
			if !isAlpha(tld[j]) {
				okTLD = false
			}
		}
		if !okTLD || strings.Contains(dom, "..") {
			continue
		}
		// user@host.example in scoped npm packages (@scope/pkg) has no
		// local part; "git@github.com" is an ssh address, still an address.
		st.add(Finding{Category: CategoryPII, Rule: "pii.email", Score: scoreEmail, Start: a, End: b})
		i = b
	}
}

// scanNumbers walks digit groups (digits joined by single spaces, dashes or
// dots) and classifies each group: payment card, SSN, phone, IPv4, CPF, DNI.
func scanNumbers(st *scan, text string) {
	var digits [32]byte
	swarFrom := 0 // a word test failed before this: go byte by byte
	for i := 0; i < len(text); {
		if !numberStart[text[i]] {
			i++
			if i >= swarFrom {
				for i+8 <= len(text) && !mayStartNumber(load64(text, i)) {
					i += 8
				}
				swarFrom = i + 8
			}
			continue
		}
		// must not continue a word or a longer token
		if i > 0 && (isAlnum(text[i-1]) || text[i-1] == '_' || text[i-1] == '.' && i > 1 && isDigit(text[i-2])) {
			j := i
			for j < len(text) && (isAlnum(text[j]) || text[j] == '_') {
				j++
			}
			i = max(j, i+1)
			continue
		}
		// collect the group
		j := i
		nd := 0
		seps := 0
		var sepKinds [4]bool // ' ', '-', '.', other
		if text[j] == '+' || text[j] == '(' {
			j++
		}
		for j < len(text) {
			ch := text[j]
			if isDigit(ch) {
				if nd < len(digits) {
					digits[nd] = ch
				}
				nd++
				j++
				continue
			}
			if (ch == ' ' || ch == '-' || ch == '.' || ch == ')' || ch == '(') && j+1 < len(text) && (isDigit(text[j+1]) || (ch == ')' && text[j+1] == ' ' && j+2 < len(text) && isDigit(text[j+2]))) {
				switch ch {
				case ' ':
					sepKinds[0] = true
				case '-':
					sepKinds[1] = true
				case '.':
					sepKinds[2] = true
				default:
					sepKinds[3] = true
				}
				seps++
				j++
				if ch == ')' && text[j] == ' ' {
					j++
				}
				continue
			}
			break
		}
		end := j
		if nd == 8 && end-i == 8 && end < len(text) && classifyDNI(st, text, i, end) {
			i = end + 1
			continue
		}
		// a trailing letter or digit-ish char means it is part of a token
		if end < len(text) && (isAlpha(text[end]) || text[end] == '_') || nd == 0 || nd > len(digits) {
			i = max(end, i+1)
			continue
		}
		tok := text[i:end]
		d := digits[:nd]
		switch {
		case classifyIPv4(st, text, i, end, tok):
		case classifySSN(st, i, end, tok, d):
		case classifyCPF(st, i, end, tok, d):
		case classifyCard(st, i, end, d, sepKinds):
		case classifyPhone(st, i, end, tok, d, sepKinds):
		}
		i = end
	}
}

func classifyIPv4(st *scan, text string, a, b int, tok string) bool {
	if strings.Count(tok, ".") != 3 || strings.ContainsAny(tok, " -()+") {
		return false
	}
	// "version 1.2.3.4" and OIDs: a fifth component means it is not an IP
	if b+1 < len(text) && text[b] == '.' && isDigit(text[b+1]) {
		return true
	}
	ip, err := netip.ParseAddr(tok)
	if err != nil || !ip.Is4() {
		return false
	}
	score := scoreIPPub
	if ip.IsPrivate() || ip.IsLoopback() || ip.IsUnspecified() || ip.IsLinkLocalUnicast() {
		score = scoreIPPriv
	}
	st.add(Finding{Category: CategoryPII, Rule: "pii.ip", Score: score, Start: a, End: b})
	return true
}

// classifySSN accepts AAA-GG-SSSS (dashes or spaces) outside the ranges the
// SSA never issues: area 000, 666, 900-999; group 00; serial 0000; plus the
// two famous advertising numbers.
func classifySSN(st *scan, a, b int, tok string, d []byte) bool {
	if len(d) != 9 || len(tok) != 11 {
		return false
	}
	sep := tok[3]
	if (sep != '-' && sep != ' ') || tok[6] != sep {
		return false
	}
	area, group, serial := string(d[:3]), string(d[3:5]), string(d[5:])
	if area == "000" || area == "666" || area[0] == '9' || group == "00" || serial == "0000" {
		return true // consumed: an SSN-shaped number that is not one
	}
	if tok == "078-05-1120" || tok == "219-09-9999" {
		return true
	}
	st.add(Finding{Category: CategoryPII, Rule: "pii.us-ssn", Score: scoreSSN, Start: a, End: b})
	return true
}

// classifyCPF accepts Brazil's ddd.ddd.ddd-dd with both mod-11 check digits.
func classifyCPF(st *scan, a, b int, tok string, d []byte) bool {
	if len(d) != 11 || len(tok) != 14 || tok[3] != '.' || tok[7] != '.' || tok[11] != '-' {
		return false
	}
	same := true
	for _, c := range d {
		if c != d[0] {
			same = false
		}
	}
	if same {
		return true
	}
	check := func(n int) byte {
		sum := 0
		for k := 0; k < n; k++ {
			sum += int(d[k]-'0') * (n + 1 - k)
		}
		r := (sum * 10) % 11
		if r == 10 {
			r = 0
		}
		return byte('0' + r)
	}
	if check(9) != d[9] || check(10) != d[10] {
		return true
	}
	st.add(Finding{Category: CategoryPII, Rule: "pii.br-cpf", Score: scoreIDChk, Start: a, End: b})
	return true
}

// classifyCard accepts 13-19 digits in groups of spaces or dashes (or none)
// with a known issuer prefix and a valid Luhn check digit.
func classifyCard(st *scan, a, b int, d []byte, seps [4]bool) bool {
	if len(d) < 13 || len(d) > 19 || seps[2] || seps[3] || (seps[0] && seps[1]) {
		return false
	}
	if !knownIIN(d) || !luhn(d) {
		return false
	}
	st.add(Finding{Category: CategoryPII, Rule: "pii.card", Score: scoreCard, Start: a, End: b})
	return true
}

func knownIIN(d []byte) bool {
	p2 := int(d[0]-'0')*10 + int(d[1]-'0')
	p4 := p2*100 + int(d[2]-'0')*10 + int(d[3]-'0')
	switch {
	case d[0] == '4': // Visa
		return true
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720: // Mastercard
		return len(d) == 16
	case p2 == 34 || p2 == 37: // Amex
		return len(d) == 15
	case p4 == 6011, p2 == 65, p4 >= 6440 && p4 <= 6499: // Discover
		return true
	case p2 == 35: // JCB
		return true
	case p2 == 36, p2 == 38, p2 == 39, p4 >= 3000 && p4 <= 3059: // Diners
		return true
	case p2 == 62: // UnionPay
		return true
	case d[0] == '5' || d[0] == '6': // Maestro
		return len(d) >= 12
	}
	return false
}

func luhn(d []byte) bool {
	sum := 0
	double := false
	for k := len(d) - 1; k >= 0; k-- {
		v := int(d[k] - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

// classifyDNI accepts Spain's DNI, 8 digits and a check letter (the
// number mod 23 indexes a fixed alphabet): "12345678Z".
func classifyDNI(st *scan, text string, a, b int) bool {
	letter := text[b]
	if letter < 'A' || letter > 'Z' || (b+1 < len(text) && isAlnum(text[b+1])) {
		return false
	}
	n := 0
	for k := a; k < b; k++ {
		n = n*10 + int(text[k]-'0')
	}
	if "TRWAGMYFPDXBNJZSQVHLCKE"[n%23] != letter {
		return false
	}
	st.add(Finding{Category: CategoryPII, Rule: "pii.es-dni", Score: scoreIDChk, Start: a, End: b + 1})
	return true
}

// classifyPhone accepts international numbers (+CC, 8-15 digits) and North
// American numbers with separators, and rejects dates and version-like
// groups.
func classifyPhone(st *scan, a, b int, tok string, d []byte, seps [4]bool) bool {
	intl := tok[0] == '+'
	switch {
	case intl && len(d) >= 8 && len(d) <= 15 && !seps[2]:
	case !intl && len(d) == 10 && (seps[0] || seps[1] || seps[3]) && !seps[2] && d[0] >= '2' && d[3] >= '2' && nanpShape(tok):
	case !intl && len(d) == 11 && d[0] == '1' && (seps[0] || seps[1] || seps[3]) && d[1] >= '2' && !seps[2]:
	default:
		return false
	}
	st.add(Finding{Category: CategoryPII, Rule: "pii.phone", Score: scorePhone, Start: a, End: b})
	return true
}

// nanpShape accepts "(212) 555-0134", "212-555-0134", "212 555 0134".
func nanpShape(tok string) bool {
	t := strings.NewReplacer("(", "", ")", "").Replace(tok)
	if len(t) != 12 {
		return false
	}
	return (t[3] == '-' || t[3] == ' ') && (t[7] == '-' || t[7] == ' ')
}

// ibanLen is the IBAN length per country (ISO 13616 registry, common
// countries).
var ibanLen = map[string]int{
	"AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "EE": 20,
	"ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IS": 26, "IT": 27,
	"LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25,
	"RO": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TR": 26, "AE": 23, "SA": 24, "IL": 23, "BR": 29,
	"UA": 29, "QA": 29, "KW": 30, "MU": 30, "TN": 24, "JO": 30, "LB": 28, "GI": 23, "FO": 18, "GL": 18,
}

// scanIBANs finds IBANs written compact or in groups of four, with a valid
// mod-97 checksum.
func scanIBANs(st *scan, text string) {
	for i := 0; i+15 <= len(text); i++ {
		// An IBAN starts with two capitals and two digits: a byte at i+3
		// that is neither rules out starting at i..i+3, a capital there
		// rules out i and i+1.
		if d := text[i+3]; !isDigit(d) {
			if d < 'A' || d > 'Z' {
				i += 3
			} else {
				i++
			}
			continue
		}
		c := text[i]
		if c < 'A' || c > 'Z' || text[i+1] < 'A' || text[i+1] > 'Z' || !isDigit(text[i+2]) || !isDigit(text[i+3]) {
			continue
		}
		if i > 0 && isAlnum(text[i-1]) {
			continue
		}
		want, ok := ibanLen[text[i:i+2]]
		if !ok {
			continue
		}
		var buf [34]byte
		n := 0
		j := i
		for j < len(text) && n < want {
			ch := text[j]
			if isDigit(ch) || 'A' <= ch && ch <= 'Z' {
				buf[n] = ch
				n++
				j++
				continue
			}
			if ch == ' ' && j+1 < len(text) && isAlnum(text[j+1]) && n%4 == 0 {
				j++
				continue
			}
			break
		}
		if n != want || (j < len(text) && isAlnum(text[j])) {
			continue
		}
		if mod97(buf[:n]) != 1 {
			continue
		}
		st.add(Finding{Category: CategoryPII, Rule: "pii.iban", Score: scoreIBAN, Start: i, End: j})
		i = j
	}
}

// mod97 computes the ISO 7064 MOD 97-10 of the rearranged IBAN.
func mod97(iban []byte) int {
	r := 0
	feed := func(c byte) {
		if isDigit(c) {
			r = (r*10 + int(c-'0')) % 97
		} else {
			v := int(c-'A') + 10
			r = (r*100 + v) % 97
		}
	}
	for _, c := range iban[4:] {
		feed(c)
	}
	for _, c := range iban[:4] {
		feed(c)
	}
	return r
}

// scanIPv6 validates colon-rich hex tokens with netip.
func scanIPv6(st *scan, text string) {
	for i := 0; i < len(text); {
		k := strings.Index(text[i:], ":")
		if k < 0 {
			return
		}
		p := i + k
		a := p
		for a > 0 && (isHexByte(text[a-1]) || text[a-1] == ':') {
			a--
		}
		b := p
		for b < len(text) && (isHexByte(text[b]) || text[b] == ':' || text[b] == '.') {
			b++
		}
		for b > p && text[b-1] == '.' {
			b--
		}
		i = max(b, p+1)
		tok := text[a:b]
		if strings.Count(tok, ":") < 2 || len(tok) < 3 || (a > 0 && isAlnum(text[a-1])) {
			continue
		}
		ip, err := netip.ParseAddr(tok)
		if err != nil || !ip.Is6() {
			continue
		}
		score := scoreIPPub
		if ip.IsPrivate() || ip.IsLoopback() || ip.IsUnspecified() || ip.IsLinkLocalUnicast() {
			score = scoreIPPriv
		}
		st.add(Finding{Category: CategoryPII, Rule: "pii.ip", Score: score, Start: a, End: b})
	}
}

func isHexByte(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
