package sse

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// upperHook re-emits events, drops "skip", fails on "stop", and ends with a
// marker naming the reason.
type upperHook struct{ reasons []error }

var errStop = errors.New("stop")

func (h *upperHook) Event(dst []byte, ev Event) ([]byte, error) {
	switch ev.Data {
	case "skip":
		return dst, nil
	case "stop":
		return dst, errStop
	}
	return AppendEvent(dst, ev)
}

func (h *upperHook) End(dst []byte, reason error) ([]byte, error) {
	h.reasons = append(h.reasons, reason)
	msg := "clean"
	if reason != nil {
		msg = reason.Error()
	}
	dst, _ = AppendEvent(dst, Event{Type: "end", Data: msg, HasData: true})
	if errors.Is(reason, io.ErrUnexpectedEOF) {
		return dst, reason
	}
	return dst, nil
}

func runFilter(t *testing.T, in string, opt FilterOptions) (string, error, *upperHook) {
	t.Helper()
	h := &upperHook{}
	f := NewFilter(io.NopCloser(strings.NewReader(in)), h, opt)
	out, err := io.ReadAll(f)
	return string(out), err, h
}

func TestFilter(t *testing.T) {
	tests := []struct {
		name, in, want string
		opt            FilterOptions
		wantErr        bool
	}{
		{name: "pass and drop", in: "data: a\n\n: ping\ndata: skip\n\ndata: b\r\n\r\n", want: "data: a\n\n: ping\ndata: b\n\nevent: end\ndata: clean\n\n"},
		{name: "hook stops", in: "data: a\n\ndata: stop\n\ndata: never\n\n", want: "data: a\n\nevent: end\ndata: stop\n\n"},
		{name: "byte cap", in: strings.Repeat("data: 0123456789\n\n", 10), opt: FilterOptions{MaxBytes: 40}, want: "data: 0123456789\n\ndata: 0123456789\n\nevent: end\ndata: " + ErrStreamTooLarge.Error() + "\n\n"},
		{name: "truncated upstream", in: "data: a\n\ndata: b", want: "data: a\n\nevent: end\ndata: unexpected EOF\n\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err, h := runFilter(t, tt.in, tt.opt)
			if got != tt.want {
				t.Errorf("output %q\nwant   %q", got, tt.want)
			}
			if (err != nil) != tt.wantErr {
				t.Errorf("err %v, wantErr %v", err, tt.wantErr)
			}
			if len(h.reasons) != 1 {
				t.Errorf("End called %d times", len(h.reasons))
			}
		})
	}
}

func TestFilterTimeoutAndClose(t *testing.T) {
	pr, pw := io.Pipe()
	var fire func()
	h := &upperHook{}
	f := NewFilter(pr, h, FilterOptions{MaxDuration: 1, AfterFunc: func(_ time.Duration, fn func()) func() bool { fire = fn; return func() bool { return true } }})
	go func() { _, _ = io.WriteString(pw, "data: a\n\n") }()
	buf := make([]byte, 100)
	n, err := f.Read(buf)
	if err != nil || string(buf[:n]) != "data: a\n\n" {
		t.Fatalf("first read %q %v", buf[:n], err)
	}
	fire() // the upstream is silent; the cap closes it
	rest, err := io.ReadAll(f)
	if err != nil || !strings.Contains(string(rest), ErrStreamTimeout.Error()) {
		t.Fatalf("after cap: %q %v", rest, err)
	}
	if err := f.Close(); err != nil || len(h.reasons) != 1 {
		t.Fatalf("Close after end: %v, End calls %d", err, len(h.reasons))
	}

	h2 := &upperHook{}
	f2 := NewFilter(io.NopCloser(strings.NewReader("data: a\n\n")), h2, FilterOptions{})
	_ = f2.Close()
	if len(h2.reasons) != 1 || !errors.Is(h2.reasons[0], io.ErrClosedPipe) {
		t.Fatalf("Close before end: reasons %v", h2.reasons)
	}
}
