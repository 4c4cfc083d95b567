package audit

import "github.com/prometheus/client_golang/prometheus"

// metrics are the warden_audit_* series. They are created unregistered so a
// Log works without a Registerer.
type metrics struct {
	records  *prometheus.CounterVec
	write    prometheus.Histogram
	failures prometheus.Counter
	depth    prometheus.GaugeFunc
	headSeq  prometheus.GaugeFunc
}

func newMetrics(l *Log) *metrics {
	return &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_audit_records_total",
			Help: "Audit records made durable, by event.",
		}, []string{"event"}),
		write: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "warden_audit_write_seconds",
			Help: "Time to write and fsync one batch of audit records.",
			// 50µs to ~1.6s.
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16),
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "warden_audit_failures_total",
			Help: "Audit appends refused and batch writes failed (disk full, I/O error, queue full).",
		}),
		depth: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "warden_audit_queue_depth",
			Help: "Audit records queued and not yet written.",
		}, func() float64 { return float64(len(l.queue)) }),
		headSeq: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "warden_audit_head_seq",
			Help: "Sequence number of the last durable audit record.",
		}, func() float64 {
			s, _ := l.Head()
			return float64(s)
		}),
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	cs := []prometheus.Collector{m.records, m.write, m.failures, m.depth, m.headSeq}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return err
		}
	}
	return nil
}
