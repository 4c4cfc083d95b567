package admission

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"syscall"
	"testing"
	"time"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAdmissionReviewTLS sends Pod-bearing AdmissionReviews over real
// TLS on loopback, one at a time, and reports the latency percentiles seen
// by the client (the API server's view) and the CPU per review.
func BenchmarkAdmissionReviewTLS(b *testing.B) {
	f := start(b, "")
	body := reviewBody(b, "prod", "CREATE", privilegedPod)
	f.send(b, body) // handshake outside the measurement
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		resp, err := f.client.Post(f.url, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		lat = append(lat, time.Since(t0))
	}
	cpu := cpuTime() - cpu0
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)]) / 1e6 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(cpu)/float64(b.N)/1e6, "cpu-ms/review")
}

// BenchmarkHandler is the in-process cost of one review without TLS and
// networking.
func BenchmarkHandler(b *testing.B) {
	f := start(b, "")
	body := reviewBody(b, "prod", "CREATE", privilegedPod)
	h := f.srv.Handler()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest(http.MethodPost, "/validate", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}
