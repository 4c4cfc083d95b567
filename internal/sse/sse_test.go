package sse

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/corpus/*.want")

// result is what a whole stream parses to: its events and how it ended.
type result struct {
	Events []Event
	End    string
}

func readAll(r io.Reader, opt ReaderOptions) result {
	rd := NewReader(r, opt)
	var res result
	for {
		ev, err := rd.Next()
		if err != nil {
			res.End = err.Error()
			if err == io.EOF {
				res.End = "EOF"
			}
			return res
		}
		res.Events = append(res.Events, ev)
	}
}

func TestCorpus(t *testing.T) {
	files, _ := filepath.Glob("testdata/corpus/*.sse")
	if len(files) == 0 {
		t.Fatal("no corpus")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".sse")
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got := readAll(bytes.NewReader(in), ReaderOptions{Comments: true})
			wantFile := strings.TrimSuffix(f, ".sse") + ".want"
			if *update {
				b, _ := json.MarshalIndent(got, "", "  ")
				if err := os.WriteFile(wantFile, append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			wb, err := os.ReadFile(wantFile)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			var want result
			if err := json.Unmarshal(wb, &want); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Fatalf("events (-want +got):\n%s", d)
			}
			// Byte-at-a-time delivery must not change the result: CR/LF
			// pairs and the BOM may be split across reads.
			if d := cmp.Diff(want, readAll(iotest.OneByteReader(bytes.NewReader(in)), ReaderOptions{Comments: true})); d != "" {
				t.Fatalf("one-byte reader differs (-want +got):\n%s", d)
			}
			checkReencode(t, got.Events)
		})
	}
}

// checkReencode asserts the canonical encoding of events reads back to the
// same events.
func checkReencode(t testing.TB, events []Event) {
	t.Helper()
	var buf []byte
	for _, ev := range events {
		var err error
		if buf, err = AppendEvent(buf, ev); err != nil {
			t.Fatalf("AppendEvent(%+v): %v", ev, err)
		}
	}
	got := readAll(bytes.NewReader(buf), ReaderOptions{Comments: true, MaxLine: 1 << 30, MaxEvent: 1 << 30})
	if got.End != "EOF" {
		t.Fatalf("re-read of canonical stream ended with %s\n%q", got.End, buf)
	}
	if d := cmp.Diff(events, got.Events, cmp.Comparer(func(a, b Event) bool {
		// An event without data carries no Data; Type is meaningless on
		// such blocks for clients, but we still keep it.
		return a == b
	})); d != "" {
		t.Fatalf("re-encoded stream differs (-want +got):\n%s\n%q", d, buf)
	}
}

func TestWhatWGExamples(t *testing.T) {
	// Examples from the spec text (§9.2.6).
	in := "data: YHOO\ndata: +2\ndata: 10\n\n"
	got := readAll(strings.NewReader(in), ReaderOptions{})
	if len(got.Events) != 1 || got.Events[0].Data != "YHOO\n+2\n10" {
		t.Fatalf("got %+v", got)
	}
	in = "data:test\n\ndata: test\n\n"
	got = readAll(strings.NewReader(in), ReaderOptions{})
	if len(got.Events) != 2 || got.Events[0].Data != "test" || got.Events[1].Data != "test" {
		t.Fatalf("got %+v", got)
	}
}

func TestLastEventIDPersists(t *testing.T) {
	rd := NewReader(strings.NewReader("id: 7\ndata: a\n\ndata: b\n\n"), ReaderOptions{})
	if _, err := rd.Next(); err != nil {
		t.Fatal(err)
	}
	ev, err := rd.Next()
	if err != nil {
		t.Fatal(err)
	}
	if ev.HasID || rd.LastEventID() != "7" {
		t.Fatalf("second event HasID=%v LastEventID=%q; want false, 7", ev.HasID, rd.LastEventID())
	}
}

func TestLimits(t *testing.T) {
	long := "data: " + strings.Repeat("x", 100) + "\n\n"
	if res := readAll(strings.NewReader(long), ReaderOptions{MaxLine: 50}); res.End != ErrLineTooLong.Error() {
		t.Errorf("long line: end %q", res.End)
	}
	if res := readAll(iotest.OneByteReader(strings.NewReader(long)), ReaderOptions{MaxLine: 50}); res.End != ErrLineTooLong.Error() {
		t.Errorf("long line byte-wise: end %q", res.End)
	}
	many := strings.Repeat("data: 0123456789\n", 20) + "\n"
	if res := readAll(strings.NewReader(many), ReaderOptions{MaxEvent: 100}); res.End != ErrEventTooLarge.Error() {
		t.Errorf("big event: end %q", res.End)
	}
	if res := readAll(strings.NewReader(many), ReaderOptions{}); res.End != "EOF" || len(res.Events) != 1 {
		t.Errorf("default limits: %+v", res)
	}
}

func TestAppendEventCanonical(t *testing.T) {
	got, err := AppendEvent(nil, Event{Type: "delta", ID: "1", HasID: true, Retry: 10, HasRetry: true, Data: "a\r\nb\rc\n", HasData: true})
	if err != nil {
		t.Fatal(err)
	}
	want := "event: delta\nid: 1\nretry: 10\ndata: a\ndata: b\ndata: c\ndata: \n\n"
	if string(got) != want {
		t.Fatalf("got %q want %q", got, want)
	}
	for _, bad := range []Event{{Type: "a\nb"}, {ID: "a\rb", HasID: true}, {ID: "a\x00", HasID: true}, {IsComment: true, Comment: "x\ny"}} {
		if _, err := AppendEvent(nil, bad); !errors.Is(err, ErrInvalidField) {
			t.Errorf("AppendEvent(%+v) err = %v", bad, err)
		}
	}
}

type flushRecorder struct {
	bytes.Buffer
	flushes int
}

func (f *flushRecorder) Flush() { f.flushes++ }

func TestWriterFlushes(t *testing.T) {
	var rec flushRecorder
	w := NewWriter(&rec)
	for range 3 {
		if err := w.WriteEvent(Event{Data: "x", HasData: true}); err != nil {
			t.Fatal(err)
		}
	}
	if rec.flushes != 3 || rec.String() != strings.Repeat("data: x\n\n", 3) {
		t.Fatalf("flushes=%d out=%q", rec.flushes, rec.String())
	}
}

func BenchmarkReadWriteChunk(b *testing.B) {
	chunk := `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}],"usage":null}` + "\n\n"
	stream := strings.Repeat(chunk, 1000)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	var out []byte
	var rd *Reader
	src := strings.NewReader(stream)
	for i := 0; b.Loop(); i++ {
		if i%1000 == 0 {
			src.Reset(stream)
			rd = NewReader(src, ReaderOptions{})
		}
		ev, err := rd.Next()
		if err != nil {
			b.Fatal(err)
		}
		out, _ = AppendEvent(out[:0], ev)
	}
}
