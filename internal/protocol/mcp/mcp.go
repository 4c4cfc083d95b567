// Package mcp is the "mcp" backend kind: Model Context Protocol servers
// behind Warden, over the Streamable HTTP transport in every revision in use
// (2025-03-26 with JSON-RPC batching; 2025-06-18 and 2025-11-25 with
// sessions, GET streams and resumption; the stateless 2026-07-28).
//
// Every client→server JSON-RPC message becomes a protocol.Call that policy
// decides on its own; denied requests are answered here with a JSON-RPC
// error carrying the request id, and never reach the server. On the way back
// list results (tools, resources, templates, prompts) are filtered item by
// item through the same policy, server→client requests and notifications on
// streams are authorized and dropped when denied, sessions are bound to the
// SPIFFE ID that created them, and tool definitions can be pinned against
// rug pulls.
//
// When the gateway lends a Guard (protocol.Request.Guard; nil when
// guardrails are off), what the server says to the model is inspected too:
// the result of every tools/call and tasks/result (context tool_output),
// resources/read and prompts/get (document), and the JSON-RPC error
// (message and data) answering any of them, in the same context; every
// tools/list, resources/list, resources/templates/list and prompts/list
// item, initialize (and server/discover) instructions and serverInfo
// title and description (tool_description); the text of
// sampling/createMessage and elicitation/create requests and of 2026-07-28
// input requests (tool_output). This holds in JSON bodies, SSE events,
// batches and resumed streams alike. Whatever the detectors found
// something in is decided again by policy, with the verdict in
// input.guards (protocol.Call.Guards) of the call it belongs to: a result
// or error rides on the request's own call and, denied or not decidable,
// is replaced by a JSON-RPC error for its id that names the reason and
// never the text; a list item's verdict rides on its item of the list
// filtering batch, so policy hides it like one the caller may not use; a
// server request's rides on its server_request call, so policy drops it
// (an input_required result with a dropped input request is withheld);
// denied instructions or server info are removed from the result and the
// session goes on. The audit record counts it all under "response_guard".
//
// The body is always authoritative: the routing headers that 2026-07-28
// mirrors from it (Mcp-Method, Mcp-Name, Mcp-Param-*) are checked against
// the body and never used for a decision, and what is forwarded is the
// canonical re-encoding (jsonstrict.Marshal) of what was decided.
//
// Specifications: https://modelcontextprotocol.io/specification/2025-11-25/basic/transports
// and https://modelcontextprotocol.io/specification/2026-07-28/basic/transports/streamable-http.
package mcp

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/protocol"
)

// Protocol revisions Warden understands.
const (
	Rev20241105 = "2024-11-05"
	Rev20250326 = "2025-03-26"
	Rev20250618 = "2025-06-18"
	Rev20251125 = "2025-11-25"
	Rev20260728 = "2026-07-28"
)

// knownRevisions is every MCP-Protocol-Version value accepted. 2024-11-05 is
// accepted only as a version negotiated over Streamable HTTP (the Go SDK
// still speaks it); its own HTTP+SSE transport is refused.
var knownRevisions = map[string]bool{
	Rev20241105: true, Rev20250326: true, Rev20250618: true, Rev20251125: true, Rev20260728: true,
}

// Pin modes (backend option pin_mode).
const (
	PinEnforce = "enforce"
	PinWarn    = "warn"
)

// Defaults for backend options.
const (
	DefaultSessionTTL      = time.Hour
	DefaultMaxMessageBytes = 4 << 20
	DefaultMaxResponse     = 16 << 20
)

// BackendOptions are the options of one backend of kind mcp, decoded from
// config.Backend.Options. Unknown keys are an error.
type BackendOptions struct {
	// AllowedOrigins lists the browser origins (scheme://host[:port]) allowed
	// to call; a request with any other Origin header gets 403 (DNS
	// rebinding). Default none: requests carrying an Origin are refused.
	AllowedOrigins []string
	// SessionTTL ends a session that has been idle this long. Default 1h.
	SessionTTL time.Duration
	// PinsFile is the approved tool definitions written by `warden mcp pin`,
	// relative to the config file. Empty: pinning is off.
	PinsFile string
	// PinMode is "enforce" (default when PinsFile is set: changed or unknown
	// tools are hidden and refused) or "warn" (reported and counted only).
	PinMode string
	// ExtraMethods allows JSON-RPC methods this package does not know,
	// mapping each to its action (read, write, invoke, admin). Default none:
	// unknown methods are refused.
	ExtraMethods map[string]string
	// MaxMessageBytes bounds one JSON-RPC message or SSE event. Default 4 MiB.
	MaxMessageBytes int
	// MaxResponseBytes bounds a buffered application/json response. Default 16 MiB.
	MaxResponseBytes int64
}

// ParseOptions decodes and validates a backend's options map.
func ParseOptions(m map[string]any) (BackendOptions, error) {
	o := BackendOptions{SessionTTL: DefaultSessionTTL, MaxMessageBytes: DefaultMaxMessageBytes, MaxResponseBytes: DefaultMaxResponse}
	var errs []error
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := m[k]
		switch k {
		case "allowed_origins":
			ss, err := stringList(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("allowed_origins: %w", err))
			}
			o.AllowedOrigins = ss
		case "session_ttl":
			d, err := duration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("session_ttl: must be a positive duration"))
			}
			o.SessionTTL = d
		case "pins_file":
			s, ok := v.(string)
			if !ok {
				errs = append(errs, fmt.Errorf("pins_file: must be a string"))
			}
			o.PinsFile = s
		case "pin_mode":
			s, _ := v.(string)
			if s != PinEnforce && s != PinWarn {
				errs = append(errs, fmt.Errorf("pin_mode: must be %q or %q", PinEnforce, PinWarn))
			}
			o.PinMode = s
		case "extra_methods":
			mm, ok := v.(map[string]any)
			if !ok {
				errs = append(errs, fmt.Errorf("extra_methods: must be a map of method to action"))
				break
			}
			o.ExtraMethods = map[string]string{}
			for meth, a := range mm {
				as, _ := a.(string)
				switch as {
				case protocol.ActionRead, protocol.ActionWrite, protocol.ActionInvoke, protocol.ActionAdmin:
					o.ExtraMethods[meth] = as
				default:
					errs = append(errs, fmt.Errorf("extra_methods: %s: action must be read, write, invoke or admin", meth))
				}
			}
		case "max_message_bytes":
			n, ok := intOf(v)
			if !ok || n <= 0 {
				errs = append(errs, fmt.Errorf("max_message_bytes: must be a positive integer"))
			}
			o.MaxMessageBytes = int(n)
		case "max_response_bytes":
			n, ok := intOf(v)
			if !ok || n <= 0 {
				errs = append(errs, fmt.Errorf("max_response_bytes: must be a positive integer"))
			}
			o.MaxResponseBytes = n
		default:
			errs = append(errs, fmt.Errorf("unknown option %q", k))
		}
	}
	if o.PinsFile != "" && o.PinMode == "" {
		o.PinMode = PinEnforce
	}
	if o.PinsFile == "" && o.PinMode != "" {
		errs = append(errs, fmt.Errorf("pin_mode: needs pins_file"))
	}
	if len(errs) > 0 {
		return o, joinErrs("mcp: options", errs)
	}
	return o, nil
}

// Deps is what a Protocol needs besides options. Zero values are fine.
type Deps struct {
	// Logger receives operational messages; nil discards.
	Logger *slog.Logger
	// Now is the clock for session expiry. Default time.Now.
	Now func() time.Time
	// Registerer receives the pin-mismatch counter. Nil: not registered.
	Registerer prometheus.Registerer
	// BaseDir resolves relative pins_file paths (the config file's directory).
	BaseDir string
}

// Protocol implements protocol.Protocol for every backend of kind mcp. It is
// safe for concurrent use; one value serves all mcp backends and keeps their
// sessions and pins apart by backend name.
type Protocol struct {
	log      *slog.Logger
	now      func() time.Time
	backends map[string]*backend
	sessions *Sessions
	tasks    *taskStore
	pinCount *prometheus.CounterVec
}

var _ protocol.Protocol = (*Protocol)(nil)

// backend is the per-backend state.
type backend struct {
	name string
	opt  BackendOptions
	pins *Pins // nil when pinning is off
	obs  *observed
}

// New builds the protocol for the given backends (name → options).
func New(backends map[string]map[string]any, deps Deps) (*Protocol, error) {
	p := &Protocol{log: deps.Logger, now: deps.Now, backends: map[string]*backend{}}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	p.pinCount = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "warden_mcp_tool_pin_mismatches_total",
		Help: "Tool definitions seen in tools/list that differ from their pin or have none, by backend and status.",
	}, []string{"backend", "status"})
	if deps.Registerer != nil {
		if err := deps.Registerer.Register(p.pinCount); err != nil {
			return nil, fmt.Errorf("mcp: register metrics: %w", err)
		}
	}
	var errs []error
	for name, m := range backends {
		o, err := ParseOptions(m)
		if err != nil {
			errs = append(errs, fmt.Errorf("backend %q: %w", name, err))
			continue
		}
		b := &backend{name: name, opt: o, obs: newObserved()}
		if o.PinsFile != "" {
			path := o.PinsFile
			if deps.BaseDir != "" && !isAbs(path) {
				path = deps.BaseDir + "/" + path
			}
			pins, err := LoadPins(path)
			if err != nil {
				errs = append(errs, fmt.Errorf("backend %q: %w", name, err))
				continue
			}
			b.pins = pins
		}
		p.backends[name] = b
	}
	if len(errs) > 0 {
		return nil, joinErrs("mcp", errs)
	}
	p.sessions = NewSessions(p.now)
	p.tasks = newTaskStore(p.now)
	return p, nil
}

// FromConfig builds the protocol for every backend of kind mcp in cfg.
func FromConfig(cfg *config.Config, deps Deps) (*Protocol, error) {
	bs := map[string]map[string]any{}
	for i := range cfg.Backends {
		b := &cfg.Backends[i]
		if b.Kind == "mcp" {
			bs[b.Name] = b.Options
		}
	}
	if deps.BaseDir == "" {
		deps.BaseDir = cfg.Dir()
	}
	return New(bs, deps)
}

// Name implements protocol.Protocol.
func (*Protocol) Name() string { return "mcp" }

// Sessions returns the session store (the admin API may list or end sessions).
func (p *Protocol) Sessions() *Sessions { return p.sessions }

// WriteError implements protocol.Protocol: a JSON-RPC error response whose
// error.data.reason is e.Code. When the refused request was parsed by this
// protocol, the response carries its id (one error per request of a batch);
// otherwise the id is null, as the transport allows for refusals.
func (p *Protocol) WriteError(w http.ResponseWriter, r *http.Request, e *protocol.Error) {
	if x := stashed(r); x != nil {
		x.WriteError(w, r, e)
		return
	}
	writeRPCError(w, e, []any{nil}, false)
}

// ctxPeer reads the verified identity the gateway put in ctx.
func ctxPeer(ctx context.Context) (string, bool) { return protocol.PeerFrom(ctx) }
