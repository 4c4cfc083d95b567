// Package admission serves `warden admission`: a Kubernetes
// ValidatingAdmissionWebhook (AdmissionReview v1 over TLS) that evaluates
// the same rules as `warden scan`, in-process, per object. Each namespace
// runs in enforce (deny), warn (admit with warnings) or audit (admit, record
// audit annotations) mode.
package admission

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/wardenhq/warden/internal/scan"
)

// Mode is what the webhook does with findings at or above the threshold.
type Mode string

// Modes, per namespace.
const (
	ModeEnforce Mode = "enforce" // deny the request
	ModeWarn    Mode = "warn"    // admit, return warnings to the client
	ModeAudit   Mode = "audit"   // admit, add audit annotations and log
	ModeOff     Mode = "off"     // admit without evaluating
)

func (m Mode) valid() bool {
	switch m {
	case ModeEnforce, ModeWarn, ModeAudit, ModeOff:
		return true
	}
	return false
}

// Config is the `warden admission -c FILE` configuration, strictly decoded.
type Config struct {
	// Listen is the HTTPS address of the webhook. Default ":8443".
	Listen string `yaml:"listen"`
	// TLS names the serving certificate and key (PEM). Required. The files
	// are re-read when they change, so cert-manager rotation needs no restart.
	TLS TLSConfig `yaml:"tls"`
	// MetricsListen serves Prometheus metrics and /healthz over plain HTTP.
	// Default ":9090"; "off" disables it.
	MetricsListen string `yaml:"metricsListen"`
	// DefaultMode applies to namespaces not listed in Namespaces. Default warn.
	DefaultMode Mode `yaml:"defaultMode"`
	// Namespaces sets the mode per namespace.
	Namespaces map[string]Mode `yaml:"namespaces"`
	// Threshold is the lowest severity that triggers the mode; lower
	// findings are returned as warnings only. Default "high".
	Threshold string `yaml:"threshold"`
	// Scan is the rule configuration shared with `warden scan`. Its strict
	// field is overridden by AllowAnnotations.
	Scan scan.Config `yaml:"scan"`
	// AllowAnnotations lets warden.dev/ignore annotations suppress findings
	// at admission. Default false: anyone who can create a pod can write an
	// annotation.
	AllowAnnotations bool `yaml:"allowAnnotations"`
	// MaxRequestBytes caps an AdmissionReview body. Default 3 MiB (the API
	// server's own request limit).
	MaxRequestBytes int64 `yaml:"maxRequestBytes"`
}

// TLSConfig names PEM files.
type TLSConfig struct {
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
}

// LoadConfig reads, strictly decodes, defaults and validates a config file.
// Relative paths are resolved against the file's directory.
func LoadConfig(file string) (*Config, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("admission: read config: %w", err)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("admission: config %s: %w", file, err)
	}
	dir := filepath.Dir(file)
	for _, p := range []*string{&c.TLS.CertFile, &c.TLS.KeyFile, &c.Scan.RulesDir} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("admission: config %s: %w", file, err)
	}
	return &c, nil
}

// SetDefaults fills in the documented defaults.
func (c *Config) SetDefaults() {
	if c.Listen == "" {
		c.Listen = ":8443"
	}
	if c.MetricsListen == "" {
		c.MetricsListen = ":9090"
	}
	if c.DefaultMode == "" {
		c.DefaultMode = ModeWarn
	}
	if c.Threshold == "" {
		c.Threshold = "high"
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = 3 << 20
	}
	c.Scan.Strict = !c.AllowAnnotations
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.TLS.CertFile == "" || c.TLS.KeyFile == "" {
		errs = append(errs, errors.New("tls.certFile and tls.keyFile are required (the API server only calls webhooks over HTTPS)"))
	}
	if !c.DefaultMode.valid() {
		errs = append(errs, fmt.Errorf("defaultMode %q: want enforce, warn, audit or off", c.DefaultMode))
	}
	for ns, m := range c.Namespaces {
		if !m.valid() {
			errs = append(errs, fmt.Errorf("namespaces.%s: mode %q: want enforce, warn, audit or off", ns, m))
		}
	}
	if _, err := scan.ParseSeverity(c.Threshold); err != nil {
		errs = append(errs, fmt.Errorf("threshold: %w", err))
	}
	if err := c.Scan.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("scan: %w", err))
	}
	return errors.Join(errs...)
}

func (c *Config) mode(ns string) Mode {
	if m, ok := c.Namespaces[ns]; ok {
		return m
	}
	return c.DefaultMode
}
