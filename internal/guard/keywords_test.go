package guard

import (
	"math/rand"
	"strings"
	"testing"

	ahocorasick "github.com/BobuSumisu/aho-corasick"
)

// keywordTexts is text with keywords at every case, overlapping and at both
// ends: the evaluation set, the benchmark text and random mixes of keywords,
// their prefixes and noise.
func keywordTexts(t *testing.T, kws []string) []string {
	texts := []string{"", "e", "ey", "EY", benchText(16 << 10)}
	for _, name := range []string{"eval.jsonl", "heldout.jsonl"} {
		for _, r := range loadEval(t, name) {
			texts = append(texts, r.Text)
		}
	}
	rng := rand.New(rand.NewSource(7))
	noise := []string{" ", "\n", "=", "_", "-", ".", "é", "\xff", "K", "\u212a"}
	for i := 0; i < 2000; i++ {
		var b strings.Builder
		for j := rng.Intn(12); j >= 0; j-- {
			k := kws[rng.Intn(len(kws))]
			switch rng.Intn(4) {
			case 0:
				k = strings.ToUpper(k)
			case 1:
				k = k[:rng.Intn(len(k)+1)]
			case 2:
				k = noise[rng.Intn(len(noise))]
			}
			b.WriteString(k)
		}
		texts = append(texts, b.String())
	}
	return texts
}

// TestKeywordsMatchAhoCorasick holds kwMatcher to the Aho-Corasick walk over
// the ASCII-lowercased text it replaced: same hits, same order.
func TestKeywordsMatchAhoCorasick(t *testing.T) {
	e, err := loadSecretEngine()
	if err != nil {
		t.Fatal(err)
	}
	trie := ahocorasick.NewTrieBuilder().AddStrings(e.kws).Build()
	for _, text := range keywordTexts(t, e.kws) {
		var want []kwHit
		lower := []byte(text)
		for i, c := range lower {
			if 'A' <= c && c <= 'Z' {
				lower[i] = c + 'a' - 'A'
			}
		}
		trie.Walk(lower, func(end, n, pattern int64) bool {
			want = append(want, kwHit{int32(pattern), int(end - n + 1)})
			return true
		})
		got := e.kw.find(text, nil)
		if len(got) != len(want) {
			t.Fatalf("%q: %d hits, want %d", text, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%q: hit %d = %+v, want %+v", text, i, got[i], want[i])
			}
		}
	}
}

// TestPrefixRunMatchesRegexp holds the byte-table check of each keyword's
// prefix run to the regexp it stands for.
func TestPrefixRunMatchesRegexp(t *testing.T) {
	e, err := loadSecretEngine()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(3))
	alphabet := "aZz09_-.=+/~ \n\xff\u212a\u017fQPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"
	tables := 0
	for _, r := range e.rules {
		for kw, p := range r.prefix {
			if p.n > 0 {
				tables++
			}
			for i := 0; i < 300; i++ {
				var b strings.Builder
				n := p.n + rng.Intn(3) - 1
				if i%3 == 0 {
					n = rng.Intn(p.n + 2)
				}
				for b.Len() < n {
					if rng.Intn(8) == 0 {
						b.WriteString(string([]rune(alphabet)[rng.Intn(len([]rune(alphabet)))]))
					} else {
						b.WriteByte(byte(rng.Intn(128)))
					}
				}
				s := b.String()
				if i%2 == 0 {
					// mostly in-class runs, so matches happen
					s = strings.Repeat("A1b2", p.n)[:min(len(s), 4*p.n)]
					if i%4 == 0 && len(s) > 0 {
						k := rng.Intn(len(s))
						s = s[:k] + string([]rune(alphabet)[rng.Intn(len([]rune(alphabet)))]) + s[k:]
					}
				}
				if got, want := p.match(s), p.re.MatchString(s); got != want {
					t.Fatalf("%s %q: prefix %s on %q: %v, regexp %v", r.id, kw, p.re, s, got, want)
				}
			}
		}
	}
	if tables == 0 {
		t.Fatal("no prefix run compiled to a table")
	}
}

// BenchmarkKeywords is the secret engine's keyword pass alone on the 16 KiB
// benchmark text.
func BenchmarkKeywords(b *testing.B) {
	e, err := loadSecretEngine()
	if err != nil {
		b.Fatal(err)
	}
	text := benchText(16 << 10)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	var hits []kwHit
	for b.Loop() {
		hits = e.kw.find(text, hits[:0])
	}
}

func BenchmarkKeywordsProse(b *testing.B) {
	e, err := loadSecretEngine()
	if err != nil {
		b.Fatal(err)
	}
	text := strings.Repeat(plainProse, (16<<10)/len(plainProse)+1)[:16<<10]
	b.SetBytes(int64(len(text)))
	var hits []kwHit
	for b.Loop() {
		hits = e.kw.find(text, hits[:0])
	}
}
