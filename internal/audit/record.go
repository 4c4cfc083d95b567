// Package audit is Warden's tamper-evident audit log: one JSON Lines record
// per decision and per outcome, each carrying the SHA-256 of the previous
// record, so that editing, deleting, inserting or reordering any record is
// detected by Verify. The writer group-commits records (write + fsync) and
// rotates files without breaking the chain; Open resumes the chain after a
// restart and repairs a line torn by a crash.
//
// The audit log is its own typed stream, not the application log: it never
// carries request bodies, tokens or authorization headers, only what the
// gateway decided and why. See docs/audit.md for the format.
package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"strconv"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/wardenhq/warden/internal/jsonstrict"
)

// Events. The gateway writes a decision before forwarding an allowed request
// and an outcome (same RequestID) after the response; a denied request gets
// only a decision carrying its Status. Rotate and repair are written by the
// log itself.
const (
	EventDecision     = "decision"
	EventOutcome      = "outcome"
	EventRevocation   = "revocation"
	EventUnrevocation = "unrevocation"
	EventPolicyReload = "policy_reload"
	EventAlert        = "alert"
	EventStartup      = "startup"
	EventShutdown     = "shutdown"
	// EventRotate is the first record of every file that continues a chain
	// from an earlier file; its Protocol["previous_file"] names that file.
	EventRotate = "rotate"
	// EventRepair records that Open truncated a torn final line; its
	// Protocol holds the number and SHA-256 of the bytes dropped.
	EventRepair = "repair"
)

// Decisions.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
)

// Record is one audit event. Only the fields set are written. It never holds
// request or response bodies, tokens or authorization headers: Resource and
// Protocol must contain only what a policy decided on (model, tool name,
// collection, token counts), never arguments or payloads.
type Record struct {
	// Seq, PrevHash and Hash place the record in the chain. The log sets
	// them; Append fills them into the caller's Record only in strict mode
	// (in batched mode the record is not chained yet when Append returns).
	Seq      uint64
	PrevHash string
	Hash     string

	// Time is when the event happened; Append sets it from the injected
	// clock when zero. Written in UTC with nanoseconds.
	Time time.Time
	// Event is one of the Event constants.
	Event string
	// RequestID ties a decision to its outcome.
	RequestID string
	// SpiffeID is the verified caller identity ("" when unauthenticated).
	SpiffeID string
	// AuthMethod is "mtls" or "jwt".
	AuthMethod string
	// Listener, Route, Backend and Kind locate the request in the config.
	Listener string
	Route    string
	Backend  string
	Kind     string
	// Resource is the policy input's resource (protocol.Call.Resource).
	Resource map[string]any
	// Action and Operation are the call's coarse and protocol verbs.
	Action    string
	Operation string
	// Decision is "allow" or "deny".
	Decision string
	// Reasons are the policy's reasons (deny reasons or allow notes).
	Reasons []string
	// Obligations are the names of obligations applied.
	Obligations []string
	// Status is the HTTP status sent to the caller (a denial's 403, the
	// upstream's status in an outcome, 499 for a client that went away).
	Status int
	// LatencyMS is the time from request start to the end of the response.
	LatencyMS float64
	// BytesIn and BytesOut count request and response body bytes.
	BytesIn  int64
	BytesOut int64
	// Protocol holds protocol fields added by later features (provider,
	// model, tokens, tool, collection, guard findings). Values must be
	// JSON-compatible (see jsonstrict.Marshal).
	Protocol map[string]any
	// Error is the redacted reason of a failure (a protocol.Error Code and
	// message, never an upstream body).
	Error string
}

// appendBody appends r's fields, without seq, prev and hash and without the
// enclosing braces, in the fixed order that makes the encoding canonical.
// Maps are encoded with sorted keys by jsonstrict.
func appendBody(dst []byte, r *Record, t time.Time) ([]byte, error) {
	var err error
	dst = append(dst, `"time":"`...)
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"')
	dst, err = appendStr(dst, "event", r.Event, err)
	dst, err = appendStr(dst, "request_id", r.RequestID, err)
	dst, err = appendStr(dst, "spiffe_id", r.SpiffeID, err)
	dst, err = appendStr(dst, "auth_method", r.AuthMethod, err)
	dst, err = appendStr(dst, "listener", r.Listener, err)
	dst, err = appendStr(dst, "route", r.Route, err)
	dst, err = appendStr(dst, "backend", r.Backend, err)
	dst, err = appendStr(dst, "kind", r.Kind, err)
	dst, err = appendMap(dst, "resource", r.Resource, err)
	dst, err = appendStr(dst, "action", r.Action, err)
	dst, err = appendStr(dst, "operation", r.Operation, err)
	dst, err = appendStr(dst, "decision", r.Decision, err)
	dst, err = appendList(dst, "reasons", r.Reasons, err)
	dst, err = appendList(dst, "obligations", r.Obligations, err)
	if r.Status != 0 {
		dst = append(dst, `,"status":`...)
		dst = strconv.AppendInt(dst, int64(r.Status), 10)
	}
	if r.LatencyMS != 0 {
		dst = append(dst, `,"latency_ms":`...)
		// Microsecond resolution is plenty and keeps the text short.
		dst = strconv.AppendFloat(dst, float64(int64(r.LatencyMS*1000))/1000, 'f', -1, 64)
	}
	if r.BytesIn != 0 {
		dst = append(dst, `,"bytes_in":`...)
		dst = strconv.AppendInt(dst, r.BytesIn, 10)
	}
	if r.BytesOut != 0 {
		dst = append(dst, `,"bytes_out":`...)
		dst = strconv.AppendInt(dst, r.BytesOut, 10)
	}
	dst, err = appendMap(dst, "protocol", r.Protocol, err)
	dst, err = appendStr(dst, "error", r.Error, err)
	return dst, err
}

func appendStr(dst []byte, key, v string, err error) ([]byte, error) {
	if v == "" || err != nil {
		return dst, err
	}
	dst = append(dst, ',', '"')
	dst = append(dst, key...)
	dst = append(dst, '"', ':')
	out, qerr := jsontext.AppendQuote(dst, v)
	if qerr != nil {
		return dst, fmt.Errorf("audit: field %s is not valid UTF-8", key)
	}
	return out, nil
}

func appendList(dst []byte, key string, v []string, err error) ([]byte, error) {
	if len(v) == 0 || err != nil {
		return dst, err
	}
	dst = append(dst, ',', '"')
	dst = append(dst, key...)
	dst = append(dst, '"', ':', '[')
	for i, s := range v {
		if i > 0 {
			dst = append(dst, ',')
		}
		out, qerr := jsontext.AppendQuote(dst, s)
		if qerr != nil {
			return dst, fmt.Errorf("audit: field %s is not valid UTF-8", key)
		}
		dst = out
	}
	return append(dst, ']'), nil
}

func appendMap(dst []byte, key string, v map[string]any, err error) ([]byte, error) {
	if len(v) == 0 || err != nil {
		return dst, err
	}
	dst = append(dst, ',', '"')
	dst = append(dst, key...)
	dst = append(dst, '"', ':')
	out, merr := jsonstrict.AppendMarshal(dst, v)
	if merr != nil {
		return dst, fmt.Errorf("audit: field %s: %w", key, merr)
	}
	return out, nil
}

// appendLine appends the complete chained line for body: the prefix with
// seq and prev, the body, and the hash of everything before the hash member.
// It returns the new buffer and the record's hash.
func (h *hasher) appendLine(dst []byte, seq uint64, prev [32]byte, body []byte) ([]byte, [32]byte) {
	start := len(dst)
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"prev":"`...)
	dst = hex.AppendEncode(dst, prev[:])
	dst = append(dst, '"', ',')
	dst = append(dst, body...)
	dst = append(dst, '}')
	sum := h.sum(dst[start:])
	dst = dst[:len(dst)-1]
	dst = append(dst, `,"hash":"`...)
	dst = hex.AppendEncode(dst, sum[:])
	dst = append(dst, '"', '}', '\n')
	return dst, sum
}

// hasher computes record hashes: SHA-256, or HMAC-SHA256 for a keyed chain.
type hasher struct {
	h   hash.Hash
	out [32]byte
}

func newHasher(key []byte) *hasher {
	if len(key) > 0 {
		return &hasher{h: hmac.New(sha256.New, key)}
	}
	return &hasher{h: sha256.New()}
}

func (h *hasher) sum(b []byte) [32]byte {
	h.h.Reset()
	h.h.Write(b)
	h.h.Sum(h.out[:0])
	return h.out
}

// sum2 hashes a||b without concatenating them.
func (h *hasher) sum2(a, b []byte) [32]byte {
	h.h.Reset()
	h.h.Write(a)
	h.h.Write(b)
	h.h.Sum(h.out[:0])
	return h.out
}
