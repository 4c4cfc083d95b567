// Package proxy is the reverse-proxy core: one transport per backend, the
// outbound request built from exactly what was authorized, hop-by-hop header
// hygiene, streaming copy (SSE and chunked bodies pass through unbuffered,
// flushed per read), and the mapping of upstream failures to statuses.
//
// It is hand-rolled rather than httputil.ReverseProxy so that the gateway
// controls every byte that goes out: the body is the protocol's canonical
// re-encoding, never the client's original stream.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wardenhq/warden/internal/protocol"
)

// TransportOptions configures one backend's transport.
type TransportOptions struct {
	// TLS is nil for plaintext (loopback only; config validation enforces it).
	TLS                   *tls.Config
	DialTimeout           time.Duration
	ResponseHeaderTimeout time.Duration
	IdleConnTimeout       time.Duration
}

// NewTransport returns a keep-alive transport that never asks for
// compression on its own and never follows proxies from the environment
// (an HTTPS_PROXY variable must not silently reroute authorized traffic).
func NewTransport(o TransportOptions) *http.Transport {
	d := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		TLSClientConfig:       o.TLS,
		TLSHandshakeTimeout:   o.DialTimeout,
		ResponseHeaderTimeout: o.ResponseHeaderTimeout,
		IdleConnTimeout:       o.IdleConnTimeout,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		ForceAttemptHTTP2:     o.TLS != nil,
		DisableCompression:    true,
		ExpectContinueTimeout: 0,
	}
}

// hopHeaders are removed in both directions (RFC 9110 §7.6.1), plus the
// Upgrade family: Warden never tunnels a protocol switch.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	"Http2-Settings",
}

// methodOverrideHeaders would let a client make the upstream see a different
// method than the one policy decided on.
var methodOverrideHeaders = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// RemoveHopHeaders deletes hop-by-hop headers, including any named in Connection.
func RemoveHopHeaders(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, f := range strings.Split(v, ",") {
			if f = textproto.TrimString(f); f != "" {
				h.Del(f)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// IsUpgrade reports whether r asks to switch protocols (WebSocket, h2c, ...)
// or to open a tunnel.
func IsUpgrade(r *http.Request) bool {
	if r.Method == http.MethodConnect || r.Header.Get("Upgrade") != "" || r.Header.Get("Http2-Settings") != "" {
		return true
	}
	for _, v := range r.Header.Values("Connection") {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(textproto.TrimString(f), "upgrade") {
				return true
			}
		}
	}
	return false
}

// Outbound describes the request to send upstream.
type Outbound struct {
	Base        *url.URL // backend URL
	Path        string   // escaped path to append to Base.Path
	RawQuery    string
	Method      string
	Header      http.Header // inbound header, already stripped of identity claims
	Body        []byte
	IdentityKey string // header carrying the verified SPIFFE ID upstream
	Identity    string
	RequestID   string
	ClientIP    string
	// Inspect is true when the protocol reads the response: compression is
	// then refused upstream so the bytes can be parsed.
	Inspect bool
}

// NewRequest builds the upstream request. Only end-to-end headers are
// copied; the body is exactly o.Body with an exact Content-Length.
func NewRequest(ctx context.Context, o *Outbound) (*http.Request, error) {
	u := *o.Base
	u.RawPath = ""
	p := strings.TrimSuffix(o.Base.EscapedPath(), "/") + o.Path
	if p == "" {
		p = "/"
	}
	if err := setEscapedPath(&u, p); err != nil {
		return nil, err
	}
	u.RawQuery = o.RawQuery
	var body io.Reader
	if o.Body != nil {
		body = bytesReader(o.Body)
	}
	out, err := http.NewRequestWithContext(ctx, o.Method, u.String(), body)
	if err != nil {
		return nil, err
	}
	h := o.Header.Clone()
	RemoveHopHeaders(h)
	for _, k := range methodOverrideHeaders {
		h.Del(k)
	}
	h.Del("Content-Length")
	h.Del("Content-Encoding") // the body was decoded before inspection
	h.Del("Expect")
	h.Del("Forwarded")
	h.Del("X-Forwarded-For")
	h.Del("X-Forwarded-Host")
	h.Del("X-Forwarded-Proto")
	h.Del("X-Real-Ip")
	if o.Inspect {
		h.Set("Accept-Encoding", "identity")
	}
	if o.ClientIP != "" {
		h.Set("X-Forwarded-For", o.ClientIP)
	}
	h.Set(o.IdentityKey, o.Identity)
	h.Set("X-Request-Id", o.RequestID)
	out.Header = h
	out.ContentLength = int64(len(o.Body))
	if o.Body == nil {
		out.ContentLength = 0
		out.Body = http.NoBody
	}
	out.Host = ""
	return out, nil
}

func setEscapedPath(u *url.URL, p string) error {
	dec, err := url.PathUnescape(p)
	if err != nil {
		return err
	}
	u.Path = dec
	if dec != p {
		u.RawPath = p
	}
	return nil
}

type sliceReader struct {
	b []byte
	i int
}

func (r *sliceReader) Read(p []byte) (int, error) {
	if r.i >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.i:])
	r.i += n
	return n, nil
}

func bytesReader(b []byte) io.Reader { return &sliceReader{b: b} }

// CopyHeader copies upstream response headers to dst, minus hop-by-hop ones.
func CopyHeader(dst, src http.Header) {
	for k, vv := range src {
		dst[k] = append(dst[k][:0:0], vv...)
	}
	RemoveHopHeaders(dst)
}

// IsStream reports whether a response must be flushed as it arrives.
func IsStream(resp *http.Response) bool {
	ct := resp.Header.Get("Content-Type")
	return resp.ContentLength < 0 || strings.HasPrefix(ct, "text/event-stream") || strings.HasPrefix(ct, "application/x-ndjson")
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// Copy streams src to w, flushing after every read when flush is true, and
// returns the bytes written. A write error (client gone) and a read error
// (upstream broke, or the request context was cancelled by the kill switch)
// are told apart by the returned flags.
func Copy(w http.ResponseWriter, src io.Reader, flush bool) (n int64, readErr, writeErr error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	rc := http.NewResponseController(w)
	for {
		nr, er := src.Read(buf)
		if nr > 0 {
			nw, ew := w.Write(buf[:nr])
			n += int64(nw)
			if ew != nil {
				return n, nil, ew
			}
			if flush {
				if ef := rc.Flush(); ef != nil {
					return n, nil, ef
				}
			}
		}
		if er == io.EOF {
			return n, nil, nil
		}
		if er != nil {
			return n, er, nil
		}
	}
}

// UpstreamError maps a transport error to the client-facing *protocol.Error:
// timeout 504, client gone 499, anything else 502. The cause is kept for the
// log, never shown.
func UpstreamError(ctx context.Context, err error) *protocol.Error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe
	}
	switch {
	case errors.Is(err, context.Canceled) || ctx.Err() == context.Canceled:
		return &protocol.Error{Status: protocol.StatusClientClosedRequest, Code: protocol.CodeClientClosed, Message: "client closed request", Err: err}
	case isTimeout(err):
		return &protocol.Error{Status: http.StatusGatewayTimeout, Code: protocol.CodeUpstreamTimeout, Message: "upstream timed out", Err: err}
	default:
		return &protocol.Error{Status: http.StatusBadGateway, Code: protocol.CodeUpstreamError, Message: "upstream unavailable", Err: err}
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.ETIMEDOUT)
}
