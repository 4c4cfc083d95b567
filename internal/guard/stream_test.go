package guard

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/zricethezav/gitleaks/v8/detect"
)

func streamAll(r *StreamRedactor, text string, chunk int) (string, int) {
	var out bytes.Buffer
	maxHeld := 0
	for i := 0; i < len(text); i += chunk {
		out.Write(r.Write([]byte(text[i:min(i+chunk, len(text))])))
		maxHeld = max(maxHeld, len(r.pending))
	}
	out.Write(r.Flush())
	return out.String(), maxHeld
}

// TestStreamRedactorSplits cuts texts holding a secret at every position
// into two chunks: the streamed output must equal Redact on the whole text.
func TestStreamRedactorSplits(t *testing.T) {
	s := newTestScanner(t)
	texts := []string{
		"before AKIAZ3MHALFQ7NWEXJOP after",
		"export GITHUB_TOKEN=ghp_8xKq2Vn7Rt5Lm3Wp9Zy4Bc6Df1Gh0Jk2Ls5N\nnext line",
		"db: postgres://app:Zq8!rT4#pL2@db.internal:5432/app and more text",
		"card 4539 1488 0343 6467 thanks, mail ana@example.org",
	}
	for _, text := range texts {
		full := s.Scan(context.Background(), text, ContextResponse)
		want := Redact(text, Redactable(full.Findings))
		if want == text {
			t.Fatalf("fixture has nothing to redact: %q", text)
		}
		for cut := 1; cut < len(text); cut++ {
			r := s.NewStreamRedactor(ContextResponse)
			var out bytes.Buffer
			out.Write(r.Write([]byte(text[:cut])))
			out.Write(r.Write([]byte(text[cut:])))
			out.Write(r.Flush())
			if out.String() != want {
				t.Fatalf("cut at %d:\n got %q\nwant %q", cut, out.String(), want)
			}
		}
		for _, chunk := range []int{1, 3, 7, 64} {
			got, _ := streamAll(s.NewStreamRedactor(ContextResponse), text, chunk)
			if got != want {
				t.Errorf("chunks of %d:\n got %q\nwant %q", chunk, got, want)
			}
		}
	}
}

// TestStreamRedactorWindow checks the hold-back bound and that a PEM key,
// longer than the window, is still redacted whole.
func TestStreamRedactorWindow(t *testing.T) {
	s, err := New(Config{StreamWindow: 64})
	if err != nil {
		t.Fatal(err)
	}
	prose := strings.Repeat("The harbour renovation continues on schedule. ", 40)
	got, held := streamAll(s.NewStreamRedactor(ContextResponse), prose, 16)
	if got != prose {
		t.Error("clean text changed")
	}
	if held > 64+16+16 {
		t.Errorf("held %d bytes, want ≤ window+step+chunk = 96", held)
	}
	pem := string(mustRead(t, "../../testdata/guard/cases/secret_pem.txt"))
	text := "here is the key:\n" + pem + "\nend of message"
	got, _ = streamAll(s.NewStreamRedactor(ContextResponse), text, 9)
	if strings.Contains(got, "PRIVATE KEY-----\n") || !strings.Contains(got, "[REDACTED:secret.private-key]") {
		t.Errorf("PEM key not redacted whole: %.200q", got)
	}
}

// TestSecretsMatchGitleaksDetector is the differential check of the
// windowed engine against gitleaks' own Detector on every row of the
// evaluation sets and the golden cases: same rule ids found.
func TestSecretsMatchGitleaksDetector(t *testing.T) {
	d, err := detect.NewDetectorDefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Disable: []string{CategoryPromptInjection, CategoryPII}, MaxDecodeDepth: 1})
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, name := range []string{"eval.jsonl", "heldout.jsonl"} {
		for _, row := range loadEval(t, name) {
			texts = append(texts, row.Text)
		}
	}
	for _, p := range caseFiles(t) {
		texts = append(texts, string(mustRead(t, p)))
	}
	texts = append(texts, benchText(16<<10))
	for _, text := range texts {
		want := map[string]bool{}
		for _, f := range d.DetectString(text) {
			want["secret."+f.RuleID] = true
		}
		got := map[string]bool{}
		for _, f := range s.Scan(context.Background(), text, ContextUser).Findings {
			if f.Category == CategorySecret && f.Rule != "secret.connection-string" {
				got[f.Rule] = true
			}
		}
		for k := range want {
			if !got[k] {
				t.Errorf("gitleaks finds %s, we do not: %.80q", k, text)
			}
		}
		for k := range got {
			if !want[k] {
				t.Errorf("we find %s, gitleaks does not: %.80q", k, text)
			}
		}
	}
}

// TestCutBefore: when the cut moves back to the start of one finding it
// may then cross another one listed before it (overlapping findings: a
// secret, then an e-mail address starting inside it and ending after it).
// No part of either may be emitted in clear: the cut ends before both.
func TestCutBefore(t *testing.T) {
	for _, tc := range []struct {
		fs        []Finding
		cut, want int
	}{
		{nil, 50, 50},
		{[]Finding{{Start: 10, End: 20}}, 50, 50},
		{[]Finding{{Start: 40, End: 60}}, 50, 40},
		// secret [30,45) listed first, e-mail [40,60) crosses the cut; moving
		// to 40 then crosses the secret: the cut must end at 30.
		{[]Finding{{Start: 30, End: 45}, {Start: 40, End: 60}}, 50, 30},
		{[]Finding{{Start: 5, End: 12}, {Start: 10, End: 31}, {Start: 30, End: 45}, {Start: 40, End: 60}}, 50, 5},
	} {
		if got := cutBefore(tc.fs, tc.cut); got != tc.want {
			t.Errorf("cutBefore(%v, %d) = %d, want %d", tc.fs, tc.cut, got, tc.want)
		}
	}
}
