package guard

// kwMatcher finds every occurrence of a set of keywords in a text, ASCII
// case-insensitively, and reports them in the order an Aho-Corasick walk
// over the ASCII-lowercased text does (by end offset, then longest first),
// which is what the secret engine's window building was written against.
//
// It replaces that walk because the secret keywords are few and most byte
// pairs of ordinary text start none of them: one bit test per byte, with no
// lowercased copy of the text, is several times cheaper than a trie step
// per byte. TestKeywordsMatchAhoCorasick holds the two to the same output.
type kwMatcher struct {
	kws []string // as given; matched against ASCII-lowercased text
	// first[c0] lists, per second byte, the keywords (by index) of two or
	// more bytes that start with c0: small lists, where a table over all
	// pairs would miss the cache on every lookup.
	first [256][]pairGroup
	// tri, in front of slot, has a bit per hash of each keyword's first
	// three bytes (any third byte for a two-byte keyword), each byte ORed
	// with 0x20: a text byte equal to a keyword byte after ASCII
	// lowercasing is equal to it after that OR too, so a position whose
	// bit is clear starts no keyword, and the hot loop needs no table.
	tri [1 << triBits / 64]uint64
	// one lists the one-byte keywords per byte; hasOne is whether any.
	one    [256][]int32
	hasOne bool
}

const triBits = 16

// triHash hashes three bytes packed as c0<<16 | c1<<8 | c2.
func triHash(k uint32) uint32 {
	return (k & 0xFFFFFF) * 0x9E3779B1 >> (32 - triBits)
}

func (m *kwMatcher) setTri(c0, c1, c2 byte) {
	h := triHash(uint32(c0|0x20)<<16 | uint32(c1|0x20)<<8 | uint32(c2|0x20))
	m.tri[h>>6] |= 1 << (h & 63)
}

type pairGroup struct {
	c1  byte
	kws []int32
}

// kwHit is one occurrence: keyword index and start offset.
type kwHit struct {
	kw    int32
	start int
}

func newKWMatcher(kws []string) *kwMatcher {
	m := &kwMatcher{kws: kws}
	for i, k := range kws {
		switch len(k) {
		case 0:
			continue
		case 1:
			m.one[k[0]] = append(m.one[k[0]], int32(i))
			m.hasOne = true
			continue
		case 2:
			for c := 0; c < 256; c++ {
				m.setTri(k[0], k[1], byte(c))
			}
		default:
			m.setTri(k[0], k[1], k[2])
		}
		gs := m.first[k[0]]
		g := 0
		for g < len(gs) && gs[g].c1 != k[1] {
			g++
		}
		if g == len(gs) {
			gs = append(gs, pairGroup{c1: k[1]})
		}
		gs[g].kws = append(gs[g].kws, int32(i))
		m.first[k[0]] = gs
	}
	return m
}

// lowerASCII is the byte the keywords are compared with.
var lowerASCII = func() (t [256]byte) {
	for i := range t {
		c := byte(i)
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		t[i] = c
	}
	return t
}()

// at appends the keywords that occur at text[i:].
func (m *kwMatcher) at(text string, i int, hits []kwHit) []kwHit {
	c1 := lowerASCII[text[i+1]]
	var ks []int32
	for _, g := range m.first[lowerASCII[text[i]]] {
		if g.c1 == c1 {
			ks = g.kws
			break
		}
	}
cand:
	for _, k := range ks {
		kw := m.kws[k]
		if len(kw) > len(text)-i {
			continue
		}
		for j := 2; j < len(kw); j++ {
			if lowerASCII[text[i+j]] != kw[j] {
				continue cand
			}
		}
		hits = append(hits, kwHit{k, i})
	}
	return hits
}

// find appends to hits every keyword occurrence in text, in Aho-Corasick
// report order.
func (m *kwMatcher) find(text string, hits []kwHit) []kwHit {
	base := len(hits)
	n := len(text)
	if m.hasOne {
		for i := 0; i < n; i++ {
			for _, k := range m.one[lowerASCII[text[i]]] {
				hits = append(hits, kwHit{k, i})
			}
		}
	}
	if n < 2 {
		return hits
	}
	// k holds text[i:i+3] ORed with 0x20. The last position has no third
	// byte: it is taken as 0x20, whose bit two-byte keywords set like any
	// other.
	tri := &m.tri
	k := uint32(text[0]|0x20)<<8 | uint32(text[1]|0x20)
	for i := 0; i+1 < n; i++ {
		if i+2 < n {
			k = k<<8 | uint32(text[i+2]|0x20)
		} else {
			k = k<<8 | 0x20
		}
		if h := triHash(k); tri[h>>6]&(1<<(h&63)) != 0 {
			hits = m.at(text, i, hits)
		}
	}
	// Found by start; reorder by end, then start (longest first). Ends are
	// at most the longest keyword out of order, so insertion sort is linear
	// in practice.
	hs := hits[base:]
	for i := 1; i < len(hs); i++ {
		h := hs[i]
		e := h.start + len(m.kws[h.kw])
		j := i
		for j > 0 {
			g := hs[j-1]
			ge := g.start + len(m.kws[g.kw])
			if ge < e || ge == e && g.start < h.start {
				break
			}
			hs[j] = g
			j--
		}
		hs[j] = h
	}
	return hits
}
