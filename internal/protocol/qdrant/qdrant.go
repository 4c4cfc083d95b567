// Package qdrant is the "qdrant" backend kind: the Qdrant REST API (1.x,
// mirrored from v1.19.0) parsed strictly enough to authorize it per
// identity, per collection and per action, and to enforce tenant isolation
// that Qdrant itself no longer offers (payload-level JWT restrictions were
// removed in v1.16).
//
// Every endpoint is classified read, write or admin from its method and
// canonical path (Qdrant's own normalization: merged "//", trimmed trailing
// "/"); anything unclassified is refused. Bodies are parsed with
// internal/jsonstrict and what is forwarded is the canonical re-encoding of
// what was decided. A policy decision may carry a "tenant" obligation; the
// exchange then confines the request to that tenant (a must condition on
// every read filter, including prefetch and batch entries; forced tenant
// payload and update_filter on writes; id selectors rewritten to filters)
// and checks every point in the response. Collection and alias lists are
// filtered to what the caller may read.
//
// With guardrails on (protocol.Request.Guard), the payload of every point a
// read returns (search, query, recommend, discover and their batch and
// groups forms, scroll, retrieval by id, a group's with_lookup point) is
// scanned as a retrieved document, the place stored RAG poisoning reaches
// an agent; upserts are scanned on the request side by the gateway. Points
// with findings are put to policy in one Authorize call per response, each
// as the read that returned it with the verdict in input.guards and the
// point id in resource.point_id; denied points are removed from their list,
// batch entry or group, and a response with flagged points that cannot be
// authorized is refused whole. A response from which nothing was removed is
// forwarded as the upstream sent it. Only what the client gets is scanned:
// a payload the client did not ask for is not.
//
// API reference: https://api.qdrant.tech/ (openapi.json of qdrant/qdrant).
package qdrant

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
)

// Reason codes this package adds to protocol.Code*. Stable: clients and
// audit queries match on them.
const (
	CodeAmbiguousJSON      = "ambiguous_json"
	CodeInvalidPath        = "invalid_path"
	CodeBatchTooLarge      = "batch_too_large"
	CodeTenantConflict     = "tenant_conflict"
	CodeTenantRequired     = "tenant_required"
	CodeTenantUnsupported  = "tenant_unsupported"
	CodeIDReference        = "tenant_id_reference"
	CodeObligationRejected = "unsupported_obligation"
	CodeTenantLeak         = "tenant_leak"
	CodeUpstreamMalformed  = "upstream_malformed"
)

// Defaults for Config fields left zero.
const (
	DefaultMaxBatch              = 1024
	DefaultMaxResponseBytes      = 32 << 20
	TenantMissingSet             = "set"
	TenantMissingRefuse          = "refuse"
	defaultTenantMissing         = TenantMissingSet
	maxCollectionName            = 255
	maxPrefetchDepth             = 8
	alertTenantLeak              = "tenant_leak"
	obligationTenant             = "tenant"
	obligationLimits             = "limits"
	resourceCollection           = "collection"
	operationCollectionsListItem = "collections.visible"
)

// Options are one qdrant backend's settings (backend "options" in the
// config file). Zero fields take the documented defaults.
type Options struct {
	// TenantField is the payload key used when a policy obligation gives
	// the tenant as a bare value ({"tenant": "acme"}). An obligation of the
	// object form names its own field. Default: none (the bare form is then
	// refused).
	TenantField string
	// TenantMissing says what an upsert whose point lacks the tenant key
	// gets: "set" (Warden adds the caller's value) or "refuse" (403).
	// Default "set". A point carrying another tenant's value is always
	// refused.
	TenantMissing string
	// MaxBatch bounds every list a request fans out over: points in an
	// upsert, ids in a selector or retrieve, searches in a batch, operations
	// in /points/batch. Default 1024.
	MaxBatch int
	// MaxResponseBytes bounds a response Warden must inspect (tenant checks,
	// list filtering). Default 32 MiB.
	MaxResponseBytes int64
	// Aliases maps alias names to the collection they point at, so policy
	// decides on the collection a request really reaches (Qdrant accepts an
	// alias wherever a collection name goes). Warden does not resolve
	// aliases itself; keep this in step with POST /collections/aliases.
	Aliases map[string]string
}

// WithDefaults returns o with zero fields set to their defaults.
func (o Options) WithDefaults() Options {
	if o.TenantMissing == "" {
		o.TenantMissing = defaultTenantMissing
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = DefaultMaxResponseBytes
	}
	return o
}

// ParseOptions reads a backend's options map: tenant_field (string),
// tenant_missing ("set" | "refuse"), max_batch (int ≥ 1),
// max_response_bytes (int ≥ 1024), aliases (alias → collection). Unknown keys are errors, all reported
// at once.
func ParseOptions(m map[string]any) (Options, error) {
	var o Options
	var errs []error
	for k, v := range m {
		switch k {
		case "tenant_field":
			s, ok := v.(string)
			if !ok || s == "" {
				errs = append(errs, errors.New("tenant_field must be a non-empty string"))
			}
			o.TenantField = s
		case "tenant_missing":
			s, _ := v.(string)
			if s != TenantMissingSet && s != TenantMissingRefuse {
				errs = append(errs, errors.New(`tenant_missing must be "set" or "refuse"`))
			}
			o.TenantMissing = s
		case "max_batch":
			n, ok := jsonstrict.Int(v)
			if !ok || n < 1 || n > 1<<20 {
				errs = append(errs, errors.New("max_batch must be an integer between 1 and 1048576"))
			}
			o.MaxBatch = int(n)
		case "aliases":
			am, ok := v.(map[string]any)
			if !ok {
				errs = append(errs, errors.New("aliases must map alias names to collection names"))
				break
			}
			o.Aliases = map[string]string{}
			for a, c := range am {
				cs, ok := c.(string)
				if !ok || !validName(a) || !validName(cs) {
					errs = append(errs, fmt.Errorf("aliases: %q must map to a valid collection name", a))
					continue
				}
				o.Aliases[a] = cs
			}
		case "max_response_bytes":
			n, ok := jsonstrict.Int(v)
			if !ok || n < 1024 {
				errs = append(errs, errors.New("max_response_bytes must be an integer ≥ 1024"))
			}
			o.MaxResponseBytes = n
		default:
			errs = append(errs, fmt.Errorf("unknown option %q", k))
		}
	}
	return o.WithDefaults(), errors.Join(errs...)
}

// Config configures a Protocol.
type Config struct {
	// Backends holds per-backend options by backend name; a backend not
	// listed gets Default.
	Backends map[string]Options
	// Default applies to backends not in Backends.
	Default Options
	// MaxDepth bounds request JSON nesting. Default 64.
	MaxDepth int
	// MaxBodyBytes bounds the request body. Default 4 MiB.
	MaxBodyBytes int64
	// Log receives debug records (never bodies, vectors or payloads). Nil
	// discards.
	Log *slog.Logger
}

// Protocol implements protocol.Protocol for Qdrant backends. It is safe for
// concurrent use.
type Protocol struct {
	cfg Config
	log *slog.Logger
}

var _ protocol.Protocol = (*Protocol)(nil)

// New returns a Protocol.
func New(cfg Config) *Protocol {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Default = cfg.Default.WithDefaults()
	b := make(map[string]Options, len(cfg.Backends))
	for k, v := range cfg.Backends {
		b[k] = v.WithDefaults()
	}
	cfg.Backends = b
	return &Protocol{cfg: cfg, log: log}
}

// FromConfig builds the Protocol for every backend of kind "qdrant" in c,
// reading each backend's options with ParseOptions.
func FromConfig(c *config.Config, log *slog.Logger) (*Protocol, error) {
	cfg := Config{Backends: map[string]Options{}, MaxDepth: c.Limits.MaxJSONDepth, MaxBodyBytes: c.Limits.MaxBodyBytes, Log: log}
	var errs []error
	for _, b := range c.Backends {
		if b.Kind != "qdrant" {
			continue
		}
		o, err := ParseOptions(b.Options)
		if err != nil {
			errs = append(errs, fmt.Errorf("qdrant: backend %q: %w", b.Name, err))
			continue
		}
		cfg.Backends[b.Name] = o
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return New(cfg), nil
}

// Name implements protocol.Protocol.
func (p *Protocol) Name() string { return "qdrant" }

func (p *Protocol) options(backend string) Options {
	if o, ok := p.cfg.Backends[backend]; ok {
		return o
	}
	return p.cfg.Default
}

// WriteError implements protocol.Protocol with Qdrant's own error body,
// {"status":{"error":"..."},"time":0}, so Qdrant clients surface Warden's
// refusals like any other API error. Only e.Message is sent.
func (p *Protocol) WriteError(w http.ResponseWriter, _ *http.Request, e *protocol.Error) {
	WriteError(w, e)
}

// WriteError writes e in Qdrant's error format.
func WriteError(w http.ResponseWriter, e *protocol.Error) {
	b, _ := jsonstrict.Marshal(errorBody(e.Message))
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	h.Del("Content-Encoding")
	w.WriteHeader(e.Status)
	_, _ = w.Write(b)
}

func errorBody(msg string) map[string]any {
	return map[string]any{"status": map[string]any{"error": msg}, "time": 0}
}

// errf is a client error with a fixed message.
func errf(status int, code, format string, args ...any) *protocol.Error {
	return protocol.Errorf(status, code, format, args...)
}

func internal(err error) *protocol.Error {
	return &protocol.Error{Status: http.StatusInternalServerError, Code: protocol.CodeInternal, Message: "internal error", Err: err}
}
