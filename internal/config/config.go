// Package config holds Warden's configuration as plain data: strict YAML
// decoding (unknown keys and wrong types are errors naming file, line and
// field), then defaults, then Validate reporting every problem at once.
//
// Each runtime package takes its own section (policy.New takes Policy, audit
// takes Audit, ...); this package imports none of them.
package config

import "time"

// Config is the whole warden serve configuration.
type Config struct {
	// Identity configures where Warden's own SVID and the trust bundles come from.
	Identity Identity `yaml:"identity"`
	// Listeners are the data-plane listeners agents call. At least one.
	Listeners []Listener `yaml:"listeners"`
	// Admin is the admin listener (health, metrics, revocations). Optional.
	Admin *Admin `yaml:"admin"`
	// Backends are the upstream services. At least one.
	Backends []Backend `yaml:"backends"`
	// Routes map host and path prefix to a backend. At least one.
	Routes []Route `yaml:"routes"`
	// Policy configures the embedded OPA engine.
	Policy Policy `yaml:"policy"`
	// Audit configures the tamper-evident audit log.
	Audit Audit `yaml:"audit"`
	// Revocation configures the kill switch store.
	Revocation Revocation `yaml:"revocation"`
	// Redis is the shared store for limits and revocations across replicas. Optional.
	Redis *Redis `yaml:"redis"`
	// Limits bounds request sizes.
	Limits Limits `yaml:"limits"`
	// Timeouts bounds every phase of a request.
	Timeouts Timeouts `yaml:"timeouts"`
	// IdentityHeader is the header that carries the verified SPIFFE ID
	// upstream. Default "X-Warden-Spiffe-Id". Inbound copies are always stripped.
	IdentityHeader string `yaml:"identity_header"`
	// Log configures the application log (not the audit log).
	Log Log `yaml:"log"`
	// Guard turns on the content detectors (prompt injection, secrets, PII)
	// on request bodies; their verdict reaches policy as input.guards.
	// Optional: absent means guardrails are off.
	Guard *Guard `yaml:"guard"`

	// path is the file the config was loaded from; relative paths inside the
	// config are resolved against its directory.
	path string
	// lines maps a field path ("backends[0].url") to its line in the file.
	lines map[string]int
}

// Identity says where Warden's SVID and bundles come from.
type Identity struct {
	// TrustDomain is Warden's own trust domain, e.g. "warden.test". Required.
	TrustDomain string `yaml:"trust_domain"`
	// Source is "files" (default) or "workload_api".
	Source string `yaml:"source"`
	// Files is the spiffe-helper layout: svid.pem, svid_key.pem, svid_bundle.pem.
	Files *IdentityFiles `yaml:"files"`
	// WorkloadAPI is the SPIFFE Workload API (a SPIRE agent).
	WorkloadAPI *WorkloadAPI `yaml:"workload_api"`
	// Federation lists additional trust domains whose bundles are accepted.
	// Each must be named explicitly; nothing is trusted implicitly.
	Federation []FederatedBundle `yaml:"federation"`
	// JWTBundles is a JWKS file (SPIFFE bundle format) of JWT-SVID signing keys,
	// used with source "files" when a listener accepts JWT-SVIDs.
	JWTBundles []JWTBundleFile `yaml:"jwt_bundles"`
}

// IdentityFiles is the spiffe-helper file layout, re-read on change.
type IdentityFiles struct {
	// Dir holds the files. Required.
	Dir string `yaml:"dir"`
	// SVID is the certificate chain file. Default "svid.pem".
	SVID string `yaml:"svid"`
	// Key is the PKCS#8 private key file. Default "svid_key.pem".
	Key string `yaml:"key"`
	// Bundle is the trust bundle of the own trust domain. Default "svid_bundle.pem".
	Bundle string `yaml:"bundle"`
	// PollInterval is how often the files are checked besides fsnotify. Default 5s.
	PollInterval time.Duration `yaml:"poll_interval"`
}

// WorkloadAPI points at a SPIFFE Workload API socket.
type WorkloadAPI struct {
	// Socket is "unix:///run/spire/sockets/agent.sock"; default $SPIFFE_ENDPOINT_SOCKET.
	Socket string `yaml:"socket"`
	// StartTimeout bounds the wait for the first SVID. Default 30s.
	StartTimeout time.Duration `yaml:"start_timeout"`
}

// FederatedBundle is an extra trust domain's X.509 bundle.
type FederatedBundle struct {
	TrustDomain string `yaml:"trust_domain"`
	// BundleFile is a PEM file of CA certificates. With source workload_api
	// it may be empty: the federated bundle then comes from the Workload API.
	BundleFile string `yaml:"bundle_file"`
}

// JWTBundleFile is a trust domain's JWT-SVID verification keys.
type JWTBundleFile struct {
	TrustDomain string `yaml:"trust_domain"`
	// File is a JWKS document (SPIFFE bundle format).
	File string `yaml:"file"`
}

// Listener is a data-plane listener.
type Listener struct {
	// Name identifies the listener in audit and metrics. Required, unique.
	Name string `yaml:"name"`
	// Address is host:port. Required.
	Address string `yaml:"address"`
	// Auth lists the accepted authentication methods: "mtls" (default) and/or "jwt".
	Auth []string `yaml:"auth"`
	// JWTAudiences are the accepted audiences for JWT-SVIDs. Required with "jwt".
	JWTAudiences []string `yaml:"jwt_audiences"`
	// TrustDomains are the trust domains whose callers are accepted on this
	// listener. Default: Identity.TrustDomain only.
	TrustDomains []string `yaml:"trust_domains"`
	// MinTLSVersion is "1.2" or "1.3" (default).
	MinTLSVersion string `yaml:"min_tls_version"`
}

// Admin is the admin listener, mTLS only.
type Admin struct {
	// Address is host:port. Required.
	Address string `yaml:"address"`
	// AllowedIDs are the SPIFFE IDs allowed to call the admin API. Required.
	AllowedIDs []string `yaml:"allowed_ids"`
	// HealthWithoutAuth serves /healthz and /readyz on a separate plaintext
	// address for kubelet probes. Optional, e.g. "127.0.0.1:9090".
	ProbeAddress string `yaml:"probe_address"`
}

// Backend is an upstream service.
type Backend struct {
	// Name is referenced by routes and policy. Required, unique.
	Name string `yaml:"name"`
	// URL is the upstream base URL (https:// or http://). Required.
	URL string `yaml:"url"`
	// Kind is the wire protocol: http (default), openai, anthropic, mcp, qdrant.
	Kind string `yaml:"kind"`
	// TLS configures the upstream hop.
	TLS UpstreamTLS `yaml:"tls"`
	// Timeouts override the global upstream timeouts.
	Timeouts *UpstreamTimeouts `yaml:"timeouts"`
	// Options are protocol-specific settings (see the protocol's docs).
	Options map[string]any `yaml:"options"`
}

// UpstreamTLS is how Warden connects upstream.
type UpstreamTLS struct {
	// Mode is "mtls" (default: Warden's SVID, upstream verified by SPIFFE ID),
	// "tls" (WebPKI or CAFile), or "plaintext" (only to loopback and only
	// with AllowPlaintext).
	Mode string `yaml:"mode"`
	// SpiffeID is the upstream's expected SPIFFE ID. Required with mtls.
	SpiffeID string `yaml:"spiffe_id"`
	// CAFile verifies the upstream with mode tls; default system roots.
	CAFile string `yaml:"ca_file"`
	// ServerName overrides SNI with mode tls.
	ServerName string `yaml:"server_name"`
	// AllowPlaintext must be true for mode plaintext.
	AllowPlaintext bool `yaml:"allow_plaintext"`
}

// UpstreamTimeouts bound the upstream hop.
type UpstreamTimeouts struct {
	// Dial default 5s.
	Dial time.Duration `yaml:"dial"`
	// ResponseHeader default 60s (LLMs are slow to start).
	ResponseHeader time.Duration `yaml:"response_header"`
	// Idle keep-alive connections are closed after this. Default 90s.
	Idle time.Duration `yaml:"idle"`
}

// Route maps a request to a backend. Routes are matched most specific
// first: exact host before wildcard, then longest path prefix.
type Route struct {
	// Name identifies the route in audit and metrics. Default "<backend><path_prefix>".
	Name string `yaml:"name"`
	// Host matches the request host (without port). Empty matches any.
	Host string `yaml:"host"`
	// PathPrefix matches the path on segment boundaries. Default "/".
	PathPrefix string `yaml:"path_prefix"`
	// Backend names the backend. Required.
	Backend string `yaml:"backend"`
	// Listener restricts the route to one listener. Empty: all.
	Listener string `yaml:"listener"`
	// StripPrefix removes PathPrefix before forwarding.
	StripPrefix bool `yaml:"strip_prefix"`
}

// Policy configures OPA.
type Policy struct {
	// Paths are Rego files or directories. Empty: the embedded default library.
	Paths []string `yaml:"paths"`
	// Data are JSON or YAML data files (e.g. roles.yaml), merged under data.
	Data []string `yaml:"data"`
	// Query is the decision rule. Default "data.warden.authz.decision".
	Query string `yaml:"query"`
	// Timeout bounds one evaluation. Default 100ms; exceeding it denies.
	Timeout time.Duration `yaml:"timeout"`
	// TestOnLoad runs the policy's own Rego tests (test_ rules) before a
	// version is accepted. Default true.
	TestOnLoad *bool `yaml:"test_on_load"`
	// Watch reloads on file change (and always on SIGHUP). Default true.
	Watch *bool `yaml:"watch"`
}

// Audit configures the audit log.
type Audit struct {
	// Path is the JSON Lines file. Required. Rotated files get a suffix.
	Path string `yaml:"path"`
	// Mode is "strict" (fsync before forwarding) or "batched" (default).
	Mode string `yaml:"mode"`
	// MaxDelay bounds how long a batched record waits. Default 10ms.
	MaxDelay time.Duration `yaml:"max_delay"`
	// MaxBatch bounds records per group commit. Default 512.
	MaxBatch int `yaml:"max_batch"`
	// RotateBytes rotates the file when it exceeds this size. Default 100 MiB; 0 keeps the default, -1 disables.
	RotateBytes int64 `yaml:"rotate_bytes"`
	// QueueTimeout bounds how long a request waits for room in the audit
	// queue before failing closed. Default 1s.
	QueueTimeout time.Duration `yaml:"queue_timeout"`
	// KeyFile holds a secret that keys the hash chain (HMAC-SHA256), so that
	// rewriting the log needs the key, not just SHA-256. Optional; verify
	// with `warden audit verify --key-file`.
	KeyFile string `yaml:"key_file"`
}

// Revocation configures the kill switch store.
type Revocation struct {
	// Path persists revocations locally. Default "<audit dir>/revocations.json".
	Path string `yaml:"path"`
	// Store is "file" (default) or "redis" (requires redis).
	Store string `yaml:"store"`
}

// Redis is the shared store.
type Redis struct {
	// Address host:port. Required.
	Address string `yaml:"address"`
	// Username, PasswordFile for AUTH. Optional.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	// DB number. Default 0.
	DB int `yaml:"db"`
	// KeyPrefix namespaces Warden's keys. Default "warden:".
	KeyPrefix string `yaml:"key_prefix"`
	// Timeout bounds each Redis call. Default 50ms.
	Timeout time.Duration `yaml:"timeout"`
	// OnError is "deny" (default: fail closed) or "local" (fall back to
	// per-replica memory limits; counted and audited).
	OnError string `yaml:"on_error"`
	// TLS to Redis.
	TLS bool `yaml:"tls"`
}

// Limits bounds request sizes.
type Limits struct {
	// MaxHeaderBytes default 32 KiB (431 beyond).
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxBodyBytes default 4 MiB (413 beyond), after decompression.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxJSONDepth default 64.
	MaxJSONDepth int `yaml:"max_json_depth"`
}

// Timeouts bounds each phase of a request on the data plane.
type Timeouts struct {
	// ReadHeader default 10s.
	ReadHeader time.Duration `yaml:"read_header"`
	// ReadBody bounds reading the whole request body. Default 30s.
	ReadBody time.Duration `yaml:"read_body"`
	// Write bounds writing a non-streaming response. Default 5m (LLMs).
	Write time.Duration `yaml:"write"`
	// Idle keep-alive timeout. Default 120s.
	Idle time.Duration `yaml:"idle"`
	// Stream bounds a streamed response's total duration. Default 10m.
	Stream time.Duration `yaml:"stream"`
	// Upstream defaults for every backend.
	Upstream UpstreamTimeouts `yaml:"upstream"`
	// Shutdown bounds the graceful drain. Default 30s.
	Shutdown time.Duration `yaml:"shutdown"`
}

// Log configures the application log.
type Log struct {
	// Level is debug, info (default), warn, error.
	Level string `yaml:"level"`
	// Format is json (default) or text.
	Format string `yaml:"format"`
}

// Guard configures the guardrail detectors (internal/guard). The gateway
// builds one scanner from it at startup.
type Guard struct {
	// Thresholds per context ("user", "tool_output", "tool_description",
	// "document", "response"): the score per category at or above which a
	// text is blocked. Missing contexts (and zero fields) keep the
	// detectors' defaults; a value above 1 never blocks.
	Thresholds map[string]GuardThresholds `yaml:"thresholds"`
	// Disable turns off whole categories: "prompt_injection", "secret", "pii".
	Disable []string `yaml:"disable"`
	// FailMode is what a request whose scan runs over budget gets: "closed"
	// (default: refused) or "open" (forwarded, flagged over_budget).
	FailMode string `yaml:"fail_mode"`
	// Timeout bounds the scan of one request body, all its strings together.
	// Default 250ms.
	Timeout time.Duration `yaml:"timeout"`
	// MaxBytes caps the bytes of one string scanned. Default 1 MiB.
	MaxBytes int `yaml:"max_bytes"`
	// StreamWindow is the look-behind, in bytes, that streamed output
	// redaction holds back (a secret split across chunks is still caught).
	// Default 256.
	StreamWindow int `yaml:"stream_window"`
	// Remote also asks an operator-run classifier (Llama Guard, Prompt
	// Guard behind a small HTTP shim). Off when absent.
	Remote *GuardRemote `yaml:"remote"`
	// Capture writes a sample of request bodies, redacted, for
	// investigation. Off when absent.
	Capture *GuardCapture `yaml:"capture"`
}

// GuardRemote points the detectors at an external classifier. The text of
// the contexts listed is sent to it: run it where that is acceptable.
type GuardRemote struct {
	// URL of the classifier endpoint (http or https). Required.
	URL string `yaml:"url"`
	// Timeout per call. Default 2s.
	Timeout time.Duration `yaml:"timeout"`
	// FailMode when the classifier errs or times out: "closed" (default:
	// the text is blocked) or "open" (the offline verdict stands).
	FailMode string `yaml:"fail_mode"`
	// Contexts sent. Default user, tool_output, tool_description, document.
	Contexts []string `yaml:"contexts"`
	// MaxBytes sent per call; longer texts are sent truncated. Default 32 KiB.
	MaxBytes int `yaml:"max_bytes"`
}

// GuardCapture configures the opt-in sampled capture of request bodies.
// Every captured body is redacted (secrets and personal data) before it is
// written; a body that cannot be redacted within the scan budget is not
// written at all.
type GuardCapture struct {
	// Path of the JSON Lines file, created 0600. Required.
	Path string `yaml:"path"`
	// When: "flagged" (default: only requests with a guard finding or a
	// guard refusal) or "all".
	When string `yaml:"when"`
	// Sample is the fraction of eligible requests captured, in (0, 1].
	// Default 1 for "flagged", and it must be set for "all".
	Sample float64 `yaml:"sample"`
	// MaxBodyBytes keeps the first bytes of each body (marked truncated).
	// Default 64 KiB.
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// MaxFileBytes stops capturing once the file reaches this size (counted
	// in warden_guard_capture_total{result="file_full"}). Default 256 MiB.
	MaxFileBytes int64 `yaml:"max_file_bytes"`
}

// GuardThresholds are the per-category blocking scores of one context.
type GuardThresholds struct {
	PromptInjection float64 `yaml:"prompt_injection"`
	Secret          float64 `yaml:"secret"`
	PII             float64 `yaml:"pii"`
}
