package guard

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/zricethezav/gitleaks/v8/detect"
	"golang.org/x/sys/unix"
)

// benchParagraphs is ordinary agent traffic written for the benchmarks:
// prose with trigger-ish words (key, token, system, ignore), code, JSON, an
// email address and a URL, so every prefilter has something to look at.
var benchParagraphs = []string{
	"You are a helpful assistant for the platform team. Answer concisely and cite the runbook section when relevant. ",
	"The user asked: how do I rotate the API key for the billing service without downtime? They also mentioned the token expired yesterday. ",
	"Please ignore the typo in the previous paragraph; the service is called billing-api, not biling-api. ",
	"func (s *Server) handle(w http.ResponseWriter, r *http.Request) {\n\tkey := r.Header.Get(\"X-Request-Id\")\n\tif key == \"\" {\n\t\thttp.Error(w, \"missing id\", 400)\n\t\treturn\n\t}\n\ts.log.Info(\"request\", \"id\", key)\n}\n",
	"{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\",\"content\":\"Summarize the document.\"},{\"role\":\"user\",\"content\":\"Here is the quarterly report.\"}]}\n",
	"Revenue grew 12% quarter over quarter, driven by the enterprise segment; churn stayed flat at 2.1%. Contact finance@example.com for the breakdown. ",
	"See https://docs.example.com/runbooks/rotate-keys?section=billing for the step-by-step procedure, and ask in #platform if anything is unclear. ",
	"def rotate(client, name):\n    old = client.get_secret(name)\n    new = client.create_secret(name)\n    return new.version, old.version\n",
}

func benchText(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		b.WriteString(benchParagraphs[i%len(benchParagraphs)])
	}
	return b.String()[:n]
}

// reportP50 records each iteration's duration and reports the median, the
// figure the performance target is stated in, both wall-clock ("p50-ns")
// and as CPU time of the benchmark's thread ("cpu-p50-ns"). The CPU figure
// is the one to read on a shared machine: wall time there includes waiting
// for a core.
func reportP50(b *testing.B, run func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	durs := make([]time.Duration, 0, b.N)
	cpus := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c0 := threadCPU()
		t0 := time.Now()
		run()
		durs = append(durs, time.Since(t0))
		cpus = append(cpus, threadCPU()-c0)
	}
	b.StopTimer()
	for _, ds := range [][]time.Duration{durs, cpus} {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	}
	b.ReportMetric(float64(durs[len(durs)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(cpus[len(cpus)/2].Nanoseconds()), "cpu-p50-ns")
	b.ReportMetric(float64(cpus[len(cpus)*99/100].Nanoseconds()), "cpu-p99-ns")
}

// threadCPU is the CPU time consumed by the calling OS thread.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// BenchmarkScan16K is the headline figure: every detector on a 16 KiB
// prompt.
func BenchmarkScan16K(b *testing.B) {
	s := newTestScanner(b)
	text := benchText(16 << 10)
	b.SetBytes(int64(len(text)))
	reportP50(b, func() { s.Scan(context.Background(), text, ContextUser) })
}

// plainProse is ordinary prose without trigger words, the floor of the
// cost.
const plainProse = "The committee met on Thursday to review the harbour renovation. Funding from the regional council covers the first phase, and the second phase depends on the spring tender. Residents asked about noise during the night shifts; the contractor agreed to limit piling to daytime hours. "

// BenchmarkScan16KProse is the same scan on plain prose.
func BenchmarkScan16KProse(b *testing.B) {
	s := newTestScanner(b)
	text := strings.Repeat(plainProse, (16<<10)/len(plainProse)+1)[:16<<10]
	b.SetBytes(int64(len(text)))
	reportP50(b, func() { s.Scan(context.Background(), text, ContextUser) })
}

// BenchmarkScanSize shows the cost is linear in the input size.
func BenchmarkScanSize(b *testing.B) {
	s := newTestScanner(b)
	for _, kib := range []int{1, 4, 16, 64, 256} {
		text := benchText(kib << 10)
		b.Run(fmt.Sprintf("%dKiB", kib), func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			reportP50(b, func() { s.Scan(context.Background(), text, ContextUser) })
		})
	}
}

// BenchmarkDetectors splits the 16 KiB figure by detector.
func BenchmarkDetectors(b *testing.B) {
	text := benchText(16 << 10)
	for _, tc := range []struct {
		name    string
		disable []string
	}{
		{"prompt_injection", []string{CategorySecret, CategoryPII}},
		{"secret", []string{CategoryPromptInjection, CategoryPII}},
		{"pii", []string{CategoryPromptInjection, CategorySecret}},
	} {
		s, err := New(Config{Disable: tc.disable})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			reportP50(b, func() { s.Scan(context.Background(), text, ContextUser) })
		})
	}
}

// BenchmarkGitleaksDetector is gitleaks' own Detector on the same 16 KiB,
// for comparison with the windowed engine (BenchmarkDetectors/secret).
func BenchmarkGitleaksDetector(b *testing.B) {
	d, err := detect.NewDetectorDefaultConfig()
	if err != nil {
		b.Fatal(err)
	}
	text := benchText(16 << 10)
	b.SetBytes(int64(len(text)))
	reportP50(b, func() { d.DetectString(text) })
}

// BenchmarkStreamRedact measures the streaming redactor per window size on
// a 16 KiB response written in 64-byte chunks (a typical SSE delta size).
func BenchmarkStreamRedact(b *testing.B) {
	text := []byte(benchText(16 << 10))
	for _, w := range []int{64, 256, 1024, 4096} {
		s, err := New(Config{StreamWindow: w})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("window=%d", w), func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			reportP50(b, func() {
				r := s.NewStreamRedactor(ContextResponse)
				for i := 0; i < len(text); i += 64 {
					r.Write(text[i:min(i+64, len(text))])
				}
				r.Flush()
			})
		})
	}
}

// TestScanAllocs holds the per-request allocation budget (STYLE habit 14):
// a benign 16 KiB prose scan allocates a handful of times (measured 5; the
// folded text and the detectors' scratch are pooled).
func TestScanAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	s := newTestScanner(t)
	text := strings.Repeat(plainProse, (16<<10)/len(plainProse)+1)[:16<<10]
	if n := testing.AllocsPerRun(20, func() { s.Scan(context.Background(), text, ContextUser) }); n > 12 {
		t.Errorf("Scan allocates %.0f times per 16 KiB of prose, budget 12", n)
	}
}
