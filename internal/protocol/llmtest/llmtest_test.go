package llmtest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestChatStreamUsageOnlyWhenAsked(t *testing.T) {
	s, err := Start(Config{Chunks: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		body      string
		wantUsage bool
	}{
		{`{"model":"m","messages":[],"stream":true}`, false},
		{`{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true}}`, true},
	} {
		resp, err := http.Post(s.URL+"/v1/chat/completions", "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out := string(b)
		if !strings.HasSuffix(out, "data: [DONE]\n\n") || strings.Count(out, `"content":"tok`) != 3 {
			t.Fatalf("stream:\n%s", out)
		}
		if got := strings.Contains(out, `"choices":[]`); got != tc.wantUsage {
			t.Errorf("usage chunk present = %v, want %v", got, tc.wantUsage)
		}
		if string(s.LastRequest().Body) != tc.body {
			t.Errorf("recorded body %q", s.LastRequest().Body)
		}
	}
}

func TestTLS(t *testing.T) {
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	defer ts.Close()
	s, err := Start(Config{TLS: ts.TLS.Clone()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.HasPrefix(s.URL, "https://127.0.0.1:") {
		t.Fatalf("URL %s", s.URL)
	}
	resp, err := ts.Client().Get(s.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"gpt-4o-mini"`) {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}

// TestReplyPieces: a configured reply is streamed whole, in Chunks pieces,
// cut on rune boundaries.
func TestReplyPieces(t *testing.T) {
	s := &Server{cfg: Config{Chunks: 7, Reply: "clé AKIAZ3MKQWERTY7N5X2P – fin"}}
	var got string
	for i := range 7 {
		p := s.piece(i)
		if !utf8.ValidString(p) {
			t.Errorf("piece %d %q cuts a rune", i, p)
		}
		got += p
	}
	if got != s.cfg.Reply || s.text() != s.cfg.Reply {
		t.Errorf("pieces = %q", got)
	}
	if (&Server{cfg: Config{Chunks: 2}}).piece(1) != "tok1 " {
		t.Error("default pieces changed")
	}
}
