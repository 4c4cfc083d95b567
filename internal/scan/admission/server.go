package admission

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wardenhq/warden/internal/scan"
)

// Server is the webhook: the Handler behind TLS, and a metrics listener.
type Server struct {
	cfg      *Config
	log      *slog.Logger
	handler  *Handler
	registry *prometheus.Registry
	certs    *certReloader
}

// NewServer prepares the scanner (rules compiled once) and loads the
// certificate; it fails fast on a bad config or unreadable key pair.
func NewServer(ctx context.Context, cfg *Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := scan.New(ctx, cfg.Scan, log)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h, err := NewHandler(s, cfg, log, reg)
	if err != nil {
		return nil, err
	}
	cr, err := newCertReloader(cfg.TLS.CertFile, cfg.TLS.KeyFile)
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, log: log, handler: h, registry: reg, certs: cr}, nil
}

// Handler returns the AdmissionReview handler, for mounting elsewhere.
func (s *Server) Handler() *Handler { return s.handler }

// Registry returns the metrics registry.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

func (s *Server) mux() *http.ServeMux {
	m := http.NewServeMux()
	m.Handle("/validate", s.handler)
	m.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	return m
}

// Serve answers webhook calls over TLS on ln until ctx ends, then shuts
// down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.mux(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       90 * time.Second,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.certs.get},
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("admission: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("admission: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ServeMetrics serves /metrics and /healthz over plain HTTP on ln.
func (s *Server) ServeMetrics(ctx context.Context, ln net.Listener) error {
	m := http.NewServeMux()
	m.Handle("/metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	m.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv := &http.Server{Handler: m, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admission: metrics: %w", err)
	}
	return nil
}

// Run listens on the configured addresses and serves until ctx ends.
func Run(ctx context.Context, cfg *Config, log *slog.Logger) error {
	s, err := NewServer(ctx, cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("admission: listen %s: %w", cfg.Listen, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	if cfg.MetricsListen != "off" {
		mln, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("admission: listen %s: %w", cfg.MetricsListen, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.ServeMetrics(ctx, mln); err != nil {
				errc <- err
				cancel()
			}
		}()
	}
	if s.log != nil {
		s.log.Info("admission: serving", "listen", ln.Addr().String(), "metrics", cfg.MetricsListen, "default_mode", string(cfg.DefaultMode))
	}
	err = s.Serve(ctx, ln)
	cancel()
	wg.Wait()
	close(errc)
	if err != nil {
		return err
	}
	return <-errc
}

// certReloader serves the key pair from disk and re-reads it when the
// certificate file changes (checked at most every 10 s), so rotated
// certificates take effect without a restart.
type certReloader struct {
	certFile, keyFile string
	mu                sync.Mutex
	cert              *tls.Certificate
	mod               time.Time
	checked           time.Time
}

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) load() error {
	st, err := os.Stat(r.certFile)
	if err != nil {
		return fmt.Errorf("admission: tls: %w", err)
	}
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("admission: tls: %w", err)
	}
	r.cert, r.mod = &c, st.ModTime()
	return nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) > 10*time.Second {
		r.checked = now
		if st, err := os.Stat(r.certFile); err == nil && !st.ModTime().Equal(r.mod) {
			// Keep serving the old pair if the new one is half-written.
			_ = r.load()
		}
	}
	return r.cert, nil
}
