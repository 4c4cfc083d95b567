// Package sse reads and writes text/event-stream exactly as the WHATWG HTML
// Living Standard defines it (§9.2 Server-sent events,
// https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream).
//
// Warden sits between an upstream that streams (LLM completions, MCP
// responses) and a client that parses the stream with a browser-grade
// parser. If Warden split events differently from the client — a bare CR
// line end, a second BOM, a "data:" without a space — an event it inspected
// could differ from the event the client acted on. So the Reader follows the
// spec line by line, and the Writer re-emits one canonical form (LF line
// ends, one "data:" line per line of data) that every parser reads the same
// way.
package sse

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Errors returned by Reader.Next besides I/O errors.
var (
	// ErrLineTooLong means a single line exceeded ReaderOptions.MaxLine.
	ErrLineTooLong = errors.New("sse: line too long")
	// ErrEventTooLarge means one event's fields exceeded ReaderOptions.MaxEvent.
	ErrEventTooLarge = errors.New("sse: event too large")
)

// Event is one block of fields ended by a blank line, or one comment line.
//
// Blocks without data are returned too (HasData false): the spec does not
// dispatch them, but they carry id and retry fields a proxy must pass on
// (an MCP priming event is an id with empty data).
type Event struct {
	// Type is the event field; "" means the default type "message".
	Type string
	// Data is the data fields joined with "\n" (the spec's data buffer
	// without its final LF).
	Data string
	// HasData is true when the block had at least one data field; exactly
	// the blocks a browser dispatches.
	HasData bool
	// ID is the value of the block's last valid id field. Ids containing
	// NUL are ignored, as the spec requires.
	ID    string
	HasID bool
	// Retry is the reconnection time in milliseconds from a retry field of
	// ASCII digits only; other retry values are ignored.
	Retry    int64
	HasRetry bool
	// Comment is the text after ':' of a comment line when IsComment is
	// true (only with ReaderOptions.Comments). Comments are returned on
	// their own, in stream order, and never mix with fields.
	Comment   string
	IsComment bool
}

// ReaderOptions bounds a Reader. Zero fields take the defaults.
type ReaderOptions struct {
	// MaxLine is the longest line accepted, in bytes. Default 1 MiB.
	MaxLine int
	// MaxEvent bounds the bytes of one event's fields. Default 1 MiB.
	MaxEvent int
	// Comments makes Next return comment lines as events (IsComment), so a
	// proxy can pass keep-alives on.
	Comments bool
}

// DefaultMax is the default for ReaderOptions.MaxLine and MaxEvent.
const DefaultMax = 1 << 20

// Reader parses an event stream incrementally. It never reads further than
// it must to return the next event, so it works on live streams.
type Reader struct {
	br          *bufio.Reader
	opt         ReaderOptions
	line        []byte
	data        []byte
	started     bool // BOM check done
	skipLF      bool // the previous line ended with CR; a following LF belongs to it
	lastEventID string
	pending     bool // a field of the current block was seen
	ev          Event
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader, opt ReaderOptions) *Reader {
	if opt.MaxLine <= 0 {
		opt.MaxLine = DefaultMax
	}
	if opt.MaxEvent <= 0 {
		opt.MaxEvent = DefaultMax
	}
	return &Reader{br: bufio.NewReaderSize(r, 16<<10), opt: opt}
}

// LastEventID is the spec's last event ID buffer: the last valid id seen,
// which a reconnecting client sends as Last-Event-ID.
func (r *Reader) LastEventID() string { return r.lastEventID }

// Next returns the next block or comment. At a clean end of stream it
// returns io.EOF. If the stream ends inside a block (no closing blank line)
// the partial block is discarded, as the spec requires, and Next returns
// io.ErrUnexpectedEOF so the caller can tell a truncated stream.
func (r *Reader) Next() (Event, error) {
	for {
		line, err := r.readLine()
		if err != nil {
			if err == io.EOF && (r.pending || len(line) > 0) {
				r.reset()
				return Event{}, io.ErrUnexpectedEOF
			}
			return Event{}, err
		}
		if len(line) == 0 {
			ev := r.ev
			if !ev.HasData && !ev.HasID && !ev.HasRetry {
				// Nothing a client would see or remember (an event
				// type alone, unknown fields): skip.
				r.reset()
				continue
			}
			if ev.HasData {
				d := r.data
				if len(d) > 0 && d[len(d)-1] == '\n' {
					d = d[:len(d)-1]
				}
				ev.Data = string(d)
			}
			r.reset()
			return ev, nil
		}
		if line[0] == ':' {
			if r.opt.Comments {
				return Event{Comment: validString(line[1:]), IsComment: true}, nil
			}
			continue
		}
		if err := r.field(line); err != nil {
			return Event{}, err
		}
	}
}

func (r *Reader) reset() {
	r.ev = Event{}
	r.data = r.data[:0]
	r.pending = false
}

// field processes one field line (spec: "process the field").
func (r *Reader) field(line []byte) error {
	name, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(name) {
	case "event":
		r.ev.Type = validString(value)
	case "data":
		if len(r.data)+len(value)+1 > r.opt.MaxEvent {
			return ErrEventTooLarge
		}
		r.data = appendValid(r.data, value)
		r.data = append(r.data, '\n')
		r.ev.HasData = true
	case "id":
		if bytes.IndexByte(value, 0) >= 0 {
			return nil
		}
		r.ev.ID, r.ev.HasID = validString(value), true
		r.lastEventID = r.ev.ID
	case "retry":
		if len(value) == 0 || !allDigits(value) {
			return nil
		}
		n, err := strconv.ParseInt(string(value), 10, 64)
		if err != nil {
			return nil // too large to be meaningful: ignore like any invalid value
		}
		r.ev.Retry, r.ev.HasRetry = n, true
	default:
		return nil
	}
	r.pending = true
	return nil
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// readLine returns the next line without its end (CRLF, LF or CR). The
// slice is valid until the next call. At end of input it returns the
// unterminated remainder (possibly empty) with io.EOF.
func (r *Reader) readLine() ([]byte, error) {
	r.line = r.line[:0]
	for {
		if _, err := r.br.Peek(1); err != nil {
			return r.line, err
		}
		buf, _ := r.br.Peek(r.br.Buffered())
		if !r.started {
			r.started = true
			if len(buf) < 3 && bytes.HasPrefix([]byte("\xef\xbb\xbf"), buf) {
				// Might be a BOM split across reads; wait for 3 bytes or EOF.
				buf, _ = r.br.Peek(3)
			}
			if bytes.HasPrefix(buf, []byte("\xef\xbb\xbf")) {
				r.br.Discard(3)
				continue
			}
		}
		if r.skipLF {
			r.skipLF = false
			if buf[0] == '\n' {
				r.br.Discard(1)
				continue
			}
		}
		i := bytes.IndexAny(buf, "\r\n")
		if i < 0 {
			if len(r.line)+len(buf) > r.opt.MaxLine {
				return nil, ErrLineTooLong
			}
			r.line = append(r.line, buf...)
			r.br.Discard(len(buf))
			continue
		}
		if len(r.line)+i > r.opt.MaxLine {
			return nil, ErrLineTooLong
		}
		r.line = append(r.line, buf[:i]...)
		r.skipLF = buf[i] == '\r'
		r.br.Discard(i + 1)
		return r.line, nil
	}
}

// validString converts b to a string, replacing invalid UTF-8 with U+FFFD
// as the spec's UTF-8 decode does.
func validString(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

func appendValid(dst, b []byte) []byte {
	if utf8.Valid(b) {
		return append(dst, b...)
	}
	return append(dst, strings.ToValidUTF8(string(b), "\uFFFD")...)
}
