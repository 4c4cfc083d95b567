package scan

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
)

// TestScanStreamsInput feeds 5,000 objects through a pipe in small writes:
// the scanner must consume the stream incrementally (a reader that needed
// the whole input first would still work, so the pipe also checks that
// decoding starts before the writer is done).
func TestScanStreamsInput(t *testing.T) {
	const n = 5000
	data := genManifests(n)
	s, err := New(context.Background(), Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	firstSeen := make(chan struct{})
	var once sync.Once
	go func() {
		defer pw.Close()
		half := len(data) / 2
		for off := 0; off < len(data); off += 4096 {
			if off >= half {
				<-firstSeen // the scanner has produced objects from the first half
			}
			end := min(off+4096, len(data))
			if _, err := pw.Write(data[off:end]); err != nil {
				return
			}
		}
	}()
	ss := s.newSession(context.Background())
	ss.progress = func(int) { once.Do(func() { close(firstSeen) }) }
	decodeStream(pr, "pipe.yaml", "", ss.addObject, ss.fail)
	res := ss.finish()
	if res.Objects != n || len(res.Errors) != 0 {
		t.Fatalf("%d objects (want %d), errors %v", res.Objects, n, res.Errors)
	}
}

// TestConcurrentEvaluate: one Scanner serves concurrent admission reviews.
func TestConcurrentEvaluate(t *testing.T) {
	s, err := New(context.Background(), Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var objs []map[string]any
	decodeStream(bytes.NewReader(genManifests(16)), "x", "", func(o *Object) { objs = append(objs, o.Raw) }, func(e *InputError) { t.Fatal(e) })
	want := make([]int, len(objs))
	for i, o := range objs {
		want[i] = len(s.EvaluateObject(context.Background(), o, "x").Findings)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, o := range objs {
				if got := len(s.EvaluateObject(context.Background(), o, "x").Findings); got != want[i] {
					t.Errorf("object %d: %d findings concurrently, %d alone", i, got, want[i])
				}
			}
		}()
	}
	wg.Wait()
}
