package sse

import (
	"errors"
	"io"
	"strconv"
	"strings"
)

// ErrInvalidField means an event's Type, ID or Comment contains a line
// break (or the ID a NUL), which cannot be written without changing the
// event.
var ErrInvalidField = errors.New("sse: field contains a line break")

// AppendEvent appends the canonical encoding of ev to dst: fields in the
// order comment | event, id, retry, data; LF line ends; one "data: " line
// per line of Data (CRLF, CR and LF in Data all split lines, as a reader
// would); a blank line to end the block.
func AppendEvent(dst []byte, ev Event) ([]byte, error) {
	if ev.IsComment {
		if strings.ContainsAny(ev.Comment, "\r\n") {
			return dst, ErrInvalidField
		}
		dst = append(dst, ':')
		dst = append(dst, ev.Comment...)
		return append(dst, '\n'), nil
	}
	if strings.ContainsAny(ev.Type, "\r\n") || strings.ContainsAny(ev.ID, "\r\n\x00") {
		return dst, ErrInvalidField
	}
	if ev.Type != "" {
		dst = append(dst, "event: "...)
		dst = append(dst, ev.Type...)
		dst = append(dst, '\n')
	}
	if ev.HasID {
		dst = append(dst, "id: "...)
		dst = append(dst, ev.ID...)
		dst = append(dst, '\n')
	}
	if ev.HasRetry && ev.Retry >= 0 {
		dst = append(dst, "retry: "...)
		dst = strconv.AppendInt(dst, ev.Retry, 10)
		dst = append(dst, '\n')
	}
	if ev.HasData {
		d := ev.Data
		for {
			i := strings.IndexAny(d, "\r\n")
			if i < 0 {
				break
			}
			dst = appendData(dst, d[:i])
			if d[i] == '\r' && i+1 < len(d) && d[i+1] == '\n' {
				i++
			}
			d = d[i+1:]
		}
		dst = appendData(dst, d)
	}
	return append(dst, '\n'), nil
}

func appendData(dst []byte, line string) []byte {
	dst = append(dst, "data: "...)
	dst = append(dst, line...)
	return append(dst, '\n')
}

// Writer writes canonical events and flushes after each, so a proxied
// stream is never held back in a buffer.
type Writer struct {
	w   io.Writer
	buf []byte
}

// NewWriter returns a Writer to w. If w has Flush() or FlushError() error
// (http.ResponseWriter, bufio.Writer), it is flushed after every event.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w}
}

// WriteEvent writes one event (or comment) and flushes.
func (w *Writer) WriteEvent(ev Event) error {
	var err error
	w.buf, err = AppendEvent(w.buf[:0], ev)
	if err != nil {
		return err
	}
	return w.WriteRaw(w.buf)
}

// WriteRaw writes already-encoded event bytes and flushes.
func (w *Writer) WriteRaw(b []byte) error {
	if _, err := w.w.Write(b); err != nil {
		return err
	}
	return w.Flush()
}

// Flush flushes the underlying writer if it can be flushed.
func (w *Writer) Flush() error {
	switch f := w.w.(type) {
	case interface{ FlushError() error }:
		return f.FlushError()
	case interface{ Flush() error }:
		return f.Flush()
	case interface{ Flush() }:
		f.Flush()
	}
	return nil
}
