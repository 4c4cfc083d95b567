package identity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/wardenhq/warden/internal/config"
)

// Source is Warden's own X.509-SVID plus the X.509 and JWT bundles of its own
// trust domain and of each explicitly federated one. It rotates: every call
// returns the current value, so TLS configs built on it pick up a new SVID
// or bundle on the next handshake. Bundles of trust domains that were not
// configured are never returned (ErrTrustDomainNotAccepted), whatever the
// Workload API pushes.
type Source interface {
	x509svid.Source
	x509bundle.Source
	jwtbundle.Source
	Close() error
}

// Config values that are defaults in config.Identity.
const (
	DefaultSVIDFile     = "svid.pem"
	DefaultKeyFile      = "svid_key.pem"
	DefaultBundleFile   = "svid_bundle.pem"
	DefaultPollInterval = 5 * time.Second
	DefaultStartTimeout = 30 * time.Second
)

// NewSource starts the configured source ("files", the default, or
// "workload_api") and blocks until it holds a valid SVID, ctx is done, or
// the start timeout (identity.workload_api.start_timeout, default 30s; also
// used for files, which a spiffe-helper sidecar may not have written yet)
// passes. Relative file paths resolve against baseDir (the config file's
// directory). log may be nil.
func NewSource(ctx context.Context, cfg config.Identity, baseDir string, log *slog.Logger) (Source, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	log = log.With("component", "identity")
	plan, err := planSource(cfg, baseDir)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, plan.startTimeout)
	defer cancel()
	switch plan.kind {
	case "files":
		return newFileSource(ctx, plan, log)
	case "workload_api":
		return newWorkloadSource(ctx, plan, log)
	}
	return nil, fmt.Errorf("identity: unknown source %q (want files or workload_api)", cfg.Source)
}

// plan is config.Identity resolved and validated: parsed trust domains,
// absolute paths, defaults applied.
type plan struct {
	kind         string
	td           spiffeid.TrustDomain
	startTimeout time.Duration

	// files
	svidPath, keyPath, bundlePath string
	poll                          time.Duration

	// workload_api
	socket string

	// federation: td → bundle file ("" = from the Workload API)
	federated map[spiffeid.TrustDomain]string
	// JWT bundle files by trust domain.
	jwtFiles map[spiffeid.TrustDomain]string
}

func planSource(cfg config.Identity, baseDir string) (*plan, error) {
	var errs []error
	p := &plan{
		kind:         cfg.Source,
		startTimeout: DefaultStartTimeout,
		poll:         DefaultPollInterval,
		federated:    map[spiffeid.TrustDomain]string{},
		jwtFiles:     map[spiffeid.TrustDomain]string{},
	}
	if p.kind == "" {
		p.kind = "files"
	}
	abs := func(path string) string {
		if path == "" || filepath.IsAbs(path) {
			return path
		}
		return filepath.Join(baseDir, path)
	}
	td, err := spiffeid.TrustDomainFromString(cfg.TrustDomain)
	if err != nil || cfg.TrustDomain == "" {
		errs = append(errs, fmt.Errorf("identity.trust_domain %q: %v", cfg.TrustDomain, err))
	}
	p.td = td
	if cfg.WorkloadAPI != nil && cfg.WorkloadAPI.StartTimeout > 0 {
		p.startTimeout = cfg.WorkloadAPI.StartTimeout
	}
	switch p.kind {
	case "files":
		f := cfg.Files
		if f == nil || f.Dir == "" {
			errs = append(errs, errors.New("identity.files.dir is required with source files"))
			break
		}
		dir := abs(f.Dir)
		name := func(v, def string) string {
			if v == "" {
				v = def
			}
			if filepath.IsAbs(v) {
				return v
			}
			return filepath.Join(dir, v)
		}
		p.svidPath = name(f.SVID, DefaultSVIDFile)
		p.keyPath = name(f.Key, DefaultKeyFile)
		p.bundlePath = name(f.Bundle, DefaultBundleFile)
		if f.PollInterval > 0 {
			p.poll = f.PollInterval
		}
	case "workload_api":
		if cfg.WorkloadAPI != nil {
			p.socket = cfg.WorkloadAPI.Socket
		}
		if p.socket == "" {
			p.socket = os.Getenv("SPIFFE_ENDPOINT_SOCKET")
		}
		if p.socket == "" {
			errs = append(errs, errors.New("identity.workload_api.socket is empty and SPIFFE_ENDPOINT_SOCKET is not set"))
		}
		if cfg.Files != nil && cfg.Files.PollInterval > 0 {
			p.poll = cfg.Files.PollInterval
		}
	default:
		errs = append(errs, fmt.Errorf("identity.source %q: want files or workload_api", cfg.Source))
	}
	for i, f := range cfg.Federation {
		ftd, err := spiffeid.TrustDomainFromString(f.TrustDomain)
		switch {
		case err != nil || f.TrustDomain == "":
			errs = append(errs, fmt.Errorf("identity.federation[%d].trust_domain %q: %v", i, f.TrustDomain, err))
			continue
		case ftd == td:
			errs = append(errs, fmt.Errorf("identity.federation[%d]: %s is Warden's own trust domain", i, ftd))
			continue
		}
		if _, dup := p.federated[ftd]; dup {
			errs = append(errs, fmt.Errorf("identity.federation[%d]: %s listed twice", i, ftd))
			continue
		}
		if f.BundleFile == "" && p.kind != "workload_api" {
			errs = append(errs, fmt.Errorf("identity.federation[%d].bundle_file is required with source files", i))
		}
		p.federated[ftd] = abs(f.BundleFile)
	}
	for i, j := range cfg.JWTBundles {
		jtd, err := spiffeid.TrustDomainFromString(j.TrustDomain)
		if err != nil || j.TrustDomain == "" {
			errs = append(errs, fmt.Errorf("identity.jwt_bundles[%d].trust_domain %q: %v", i, j.TrustDomain, err))
			continue
		}
		if _, ok := p.federated[jtd]; !ok && jtd != td {
			errs = append(errs, fmt.Errorf("identity.jwt_bundles[%d]: %s is neither the own trust domain nor listed in identity.federation", i, jtd))
			continue
		}
		if _, dup := p.jwtFiles[jtd]; dup {
			errs = append(errs, fmt.Errorf("identity.jwt_bundles[%d]: %s listed twice", i, jtd))
			continue
		}
		if j.File == "" {
			errs = append(errs, fmt.Errorf("identity.jwt_bundles[%d].file is required", i))
			continue
		}
		p.jwtFiles[jtd] = abs(j.File)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("identity: config: %w", err)
	}
	return p, nil
}

// accepts reports whether td is the own or an explicitly federated trust
// domain.
func (p *plan) accepts(td spiffeid.TrustDomain) bool {
	if td == p.td {
		return true
	}
	_, ok := p.federated[td]
	return ok
}

func notAccepted(td spiffeid.TrustDomain) error {
	return fmt.Errorf("%w: %q is not configured", ErrTrustDomainNotAccepted, td.Name())
}
