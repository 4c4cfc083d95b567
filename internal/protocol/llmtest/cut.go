package llmtest

import (
	"io"
	"net"
	"net/http"
	"time"
	"unicode/utf8"
)

// CutDeltas cuts reply into deltas at the places cuts choose (each byte, mod
// what is left, is the length of the next delta, moved forward to a rune
// boundary: a delta is a JSON string), the rest being the last delta. For
// fuzzing stream filters with arbitrary cuts.
func CutDeltas(reply string, cuts []byte) []string {
	var deltas []string
	rest := reply
	for _, c := range cuts {
		n := int(c) % (len(rest) + 1)
		for n < len(rest) && !utf8.RuneStart(rest[n]) {
			n++
		}
		deltas = append(deltas, rest[:n])
		rest = rest[n:]
	}
	return append(deltas, rest)
}

// ChunkedReader returns a reader that yields at most n bytes per Read, as
// a network would (n < 1 means 1).
func ChunkedReader(b []byte, n int) io.Reader { return &chunked{b: b, n: max(n, 1)} }

type chunked struct {
	b []byte
	n int
}

func (r *chunked) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n, len(r.b))
	copy(p, r.b[:k])
	r.b = r.b[k:]
	return k, nil
}

// ScriptedSSE starts an upstream on 127.0.0.1 that answers every request
// with pieces as text/event-stream, each written and flushed on its own
// (so a test decides where the network cuts the stream). It returns the
// base URL and a function that stops the server.
func ScriptedSSE(pieces ...string) (url string, stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic("llmtest: listen on loopback: " + err.Error())
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		for _, p := range pieces {
			if _, err := io.WriteString(w, p); err != nil {
				return
			}
			_ = rc.Flush()
		}
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }
}
