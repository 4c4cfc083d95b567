package audit

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wardenhq/warden/internal/config"
)

func benchAppend(b *testing.B, mode string, parallelism int) {
	dir := b.TempDir()
	l := openLog(b, dir, func(c *config.Audit) { c.Mode = mode; c.RotateBytes = 0 }, Options{})
	r := sample(1) // an outcome with a protocol map
	b.ReportAllocs()
	b.SetParallelism(parallelism)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		rec := *r
		for pb.Next() {
			if err := l.Append(context.Background(), &rec); err != nil {
				b.Error(err)
				return
			}
		}
	})
	// Close flushes: the figure counts records made durable.
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkAppendBatched is the default mode under concurrent load.
func BenchmarkAppendBatched(b *testing.B) { benchAppend(b, "batched", 8) }

// BenchmarkAppendStrict is one fsync per group commit with 32 concurrent
// requests per core, as a busy gateway would have.
func BenchmarkAppendStrict(b *testing.B) { benchAppend(b, "strict", 32) }

// BenchmarkEncode is the per-record CPU cost: encoding and chaining.
func BenchmarkEncode(b *testing.B) {
	for _, tc := range []struct {
		name string
		r    *Record
	}{{"decision", sample(0)}, {"outcome", sample(1)}} {
		b.Run(tc.name, func(b *testing.B) {
			h := newHasher(nil)
			var body, line []byte
			var prev [32]byte
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				var err error
				if body, err = appendBody(body[:0], tc.r, tc.r.Time); err != nil {
					b.Fatal(err)
				}
				line, prev = h.appendLine(line[:0], uint64(i+1), prev, body)
			}
			b.SetBytes(int64(len(line)))
		})
	}
}

// BenchmarkVerify measures verifier throughput.
func BenchmarkVerify(b *testing.B) {
	dir := b.TempDir()
	l := openLog(b, dir, func(c *config.Audit) { c.Mode = "batched" }, Options{})
	appendN(b, l, 0, 10000)
	l.Close()
	st, err := os.Stat(filepath.Join(dir, "audit.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	b.ReportAllocs()
	for b.Loop() {
		if rep, err := Verify(dir); err != nil || !rep.OK() {
			b.Fatal(err, rep.String())
		}
	}
	b.ReportMetric(10000*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
