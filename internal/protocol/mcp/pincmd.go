package mcp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/identity"
)

// PinOptions drive PinBackend (`warden mcp pin`).
type PinOptions struct {
	// Backend names the mcp backend in the config. Required.
	Backend string
	// URL overrides the backend's URL (the MCP endpoint).
	URL string
	// InsecurePlaintext connects without TLS; only to loopback addresses.
	InsecurePlaintext bool
	// Out overrides the backend's pins_file.
	Out string
	// Logger for the identity source; nil discards.
	Logger *slog.Logger
}

// PinResult says what PinBackend wrote and how it differs from the file it
// replaced, so the operator reviews exactly the changes.
type PinResult struct {
	Path                    string
	Tools                   int
	Added, Changed, Removed []string
}

// PinBackend fetches the live tool definitions of an mcp backend and writes
// them as the approved pins. It connects the way the gateway does: with
// Warden's own X.509-SVID for tls.mode mtls, WebPKI (or ca_file) for tls,
// and plain HTTP only to loopback.
func PinBackend(ctx context.Context, cfg *config.Config, o PinOptions) (*PinResult, error) {
	var bc *config.Backend
	for i := range cfg.Backends {
		if cfg.Backends[i].Name == o.Backend {
			bc = &cfg.Backends[i]
		}
	}
	if bc == nil {
		return nil, fmt.Errorf("mcp pin: no backend %q in %s", o.Backend, cfg.Path())
	}
	if bc.Kind != config.KindMCP {
		return nil, fmt.Errorf("mcp pin: backend %q is kind %q, not mcp", o.Backend, bc.Kind)
	}
	bo, err := ParseOptions(bc.Options)
	if err != nil {
		return nil, err
	}
	out := o.Out
	if out == "" {
		if bo.PinsFile == "" {
			return nil, fmt.Errorf("mcp pin: backend %q has no options.pins_file; pass --out", o.Backend)
		}
		out = cfg.Resolve(bo.PinsFile)
	}
	endpoint := bc.URL
	if o.URL != "" {
		endpoint = o.URL
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("mcp pin: url: %w", err)
	}
	client, closeFn, err := pinClient(ctx, cfg, bc, u, o)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	defs, err := FetchServer(ctx, client, endpoint)
	if err != nil {
		return nil, err
	}
	pins, err := NewPins(o.Backend, defs.Tools)
	if err != nil {
		return nil, err
	}
	pins.PinInstructions(defs.Instructions)
	res := &PinResult{Path: out, Tools: len(pins.Tools)}
	if old, err := LoadPins(out); err == nil {
		res.Added, res.Changed, res.Removed = diffPins(old, pins)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("mcp pin: existing %s: %w", out, err)
	} else {
		for n := range pins.Tools {
			res.Added = append(res.Added, n)
		}
		sort.Strings(res.Added)
	}
	b, err := pins.Marshal()
	if err != nil {
		return nil, err
	}
	if err := writeAtomic(out, b); err != nil {
		return nil, fmt.Errorf("mcp pin: write %s: %w", out, err)
	}
	return res, nil
}

func diffPins(old, cur *Pins) (added, changed, removed []string) {
	for n, t := range cur.Tools {
		o, ok := old.Tools[n]
		switch {
		case !ok:
			added = append(added, n)
		case o.SHA256 != t.SHA256:
			changed = append(changed, n)
		}
	}
	for n := range old.Tools {
		if _, ok := cur.Tools[n]; !ok {
			removed = append(removed, n)
		}
	}
	if (old.Instructions == nil) != (cur.Instructions == nil) || old.Instructions != nil && old.Instructions.SHA256 != cur.Instructions.SHA256 {
		changed = append(changed, "(server instructions)")
	}
	sort.Strings(added)
	sort.Strings(changed)
	sort.Strings(removed)
	return added, changed, removed
}

func writeAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".pins-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func pinClient(ctx context.Context, cfg *config.Config, bc *config.Backend, u *url.URL, o PinOptions) (*http.Client, func(), error) {
	noop := func() {}
	tr := &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext, ResponseHeaderTimeout: 30 * time.Second}
	client := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	plaintext := o.InsecurePlaintext || bc.TLS.Mode == "plaintext"
	if plaintext {
		if u.Scheme != "http" || !isLoopback(u.Hostname()) {
			return nil, noop, fmt.Errorf("mcp pin: plaintext only to http://127.0.0.1, [::1] or localhost, not %s", u.Redacted())
		}
		if !o.InsecurePlaintext && !bc.TLS.AllowPlaintext {
			return nil, noop, fmt.Errorf("mcp pin: backend %q: tls.mode plaintext needs allow_plaintext", bc.Name)
		}
		return client, noop, nil
	}
	if u.Scheme != "https" {
		return nil, noop, fmt.Errorf("mcp pin: %s is not https (use --insecure-plaintext for a loopback server)", u.Redacted())
	}
	switch bc.TLS.Mode {
	case "tls":
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: bc.TLS.ServerName}
		if bc.TLS.CAFile != "" {
			pem, err := os.ReadFile(cfg.Resolve(bc.TLS.CAFile))
			if err != nil {
				return nil, noop, fmt.Errorf("mcp pin: ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, noop, fmt.Errorf("mcp pin: ca_file has no certificates")
			}
			tc.RootCAs = pool
		}
		tr.TLSClientConfig = tc
		return client, noop, nil
	default: // mtls
		id, err := spiffeid.FromString(bc.TLS.SpiffeID)
		if err != nil {
			return nil, noop, fmt.Errorf("mcp pin: backend %q: tls.spiffe_id: %w", bc.Name, err)
		}
		src, err := identity.NewSource(ctx, cfg.Identity, cfg.Dir(), o.Logger)
		if err != nil {
			return nil, noop, fmt.Errorf("mcp pin: identity: %w", err)
		}
		tr.TLSClientConfig = identity.ClientTLSConfig(src, id)
		return client, func() { _ = src.Close() }, nil
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
