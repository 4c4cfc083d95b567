package sse

import (
	"errors"
	"io"
	"sync/atomic"
	"time"
)

// Errors a Filter passes to Hook.End when it cuts a stream off itself.
var (
	// ErrStreamTooLarge means the stream exceeded FilterOptions.MaxBytes.
	ErrStreamTooLarge = errors.New("sse: stream byte cap reached")
	// ErrStreamTimeout means the stream exceeded FilterOptions.MaxDuration.
	ErrStreamTimeout = errors.New("sse: stream time cap reached")
)

// Hook is what a protocol plugs into a Filter: it sees every block the
// upstream sends and decides what the client gets.
type Hook interface {
	// Event appends to dst what the client should receive for ev (usually
	// ev itself, canonically encoded; nothing to drop it). A non-nil error
	// cuts the stream off: End is called with it.
	Event(dst []byte, ev Event) ([]byte, error)
	// End is called exactly once, when the stream ends: reason is nil at a
	// clean end of the upstream stream, the Event error, ErrStreamTooLarge,
	// ErrStreamTimeout, or the upstream read error. It appends the final
	// bytes (an error event) and returns the error the client-facing body
	// should end with: nil for a clean end, non-nil to make the proxy abort
	// the response (a broken upstream must not look like a finished one).
	End(dst []byte, reason error) ([]byte, error)
}

// FilterOptions bounds a Filter.
type FilterOptions struct {
	Reader ReaderOptions
	// MaxBytes caps the bytes emitted to the client; 0 means no cap.
	MaxBytes int64
	// MaxDuration caps the stream's lifetime from NewFilter; 0 means no cap.
	MaxDuration time.Duration
	// AfterFunc schedules the duration cap; nil means time.AfterFunc.
	// Tests inject it to fire the cap deterministically.
	AfterFunc func(d time.Duration, f func()) (stop func() bool)
}

// Filter is an io.ReadCloser that reads an upstream event stream event by
// event, passes each through a Hook, and yields the result. It pulls from
// upstream only when its reader asks, so a slow client slows the upstream
// instead of growing a buffer, and nothing is held back between events.
type Filter struct {
	src      io.ReadCloser
	rd       *Reader
	hook     Hook
	opt      FilterOptions
	out      []byte
	off      int
	emitted  int64
	ended    bool
	endErr   error
	timedOut atomic.Bool
	stop     func() bool
}

var _ io.ReadCloser = (*Filter)(nil)

// NewFilter starts filtering src through hook.
func NewFilter(src io.ReadCloser, hook Hook, opt FilterOptions) *Filter {
	f := &Filter{src: src, rd: NewReader(src, opt.Reader), hook: hook, opt: opt}
	f.rd.opt.Comments = true
	if opt.MaxDuration > 0 {
		after := opt.AfterFunc
		if after == nil {
			after = func(d time.Duration, fn func()) func() bool { return time.AfterFunc(d, fn).Stop }
		}
		f.stop = after(opt.MaxDuration, func() {
			f.timedOut.Store(true)
			_ = src.Close() // unblocks a Read waiting on a silent upstream
		})
	}
	return f
}

// Read implements io.Reader.
func (f *Filter) Read(p []byte) (int, error) {
	for f.off >= len(f.out) {
		if f.ended {
			if f.endErr != nil {
				return 0, f.endErr
			}
			return 0, io.EOF
		}
		f.out, f.off = f.out[:0], 0
		f.next()
	}
	n := copy(p, f.out[f.off:])
	f.off += n
	return n, nil
}

func (f *Filter) next() {
	ev, err := f.rd.Next()
	if f.timedOut.Load() {
		f.end(ErrStreamTimeout)
		return
	}
	if err != nil {
		if err == io.EOF {
			err = nil
		}
		f.end(err)
		return
	}
	if ev.IsComment {
		f.out, _ = AppendEvent(f.out, ev) // keep-alives pass; a parsed comment has no line break
	} else {
		var herr error
		if f.out, herr = f.hook.Event(f.out, ev); herr != nil {
			f.out = f.out[:0]
			f.end(herr)
			return
		}
	}
	if f.opt.MaxBytes > 0 && f.emitted+int64(len(f.out)) > f.opt.MaxBytes {
		f.out = f.out[:0]
		f.end(ErrStreamTooLarge)
		return
	}
	f.emitted += int64(len(f.out))
}

func (f *Filter) end(reason error) {
	f.ended = true
	if f.stop != nil {
		f.stop()
	}
	_ = f.src.Close()
	f.out, f.endErr = f.hook.End(f.out, reason)
}

// Close stops reading upstream. If the stream had not ended, the hook's End
// sees io.ErrClosedPipe (the client went away).
func (f *Filter) Close() error {
	if !f.ended {
		f.end(io.ErrClosedPipe)
	}
	return nil
}
