// Package jsonstrict is the one strict JSON layer every Warden protocol
// shares. It turns a request body into a plain tree (nil, bool, string,
// Number, []any, map[string]any) and back into canonical bytes, refusing
// every input that two JSON parsers could read differently: duplicate keys,
// keys that are case or Unicode-fold variants of each other, invalid UTF-8
// (including lone surrogate escapes), trailing data, excessive depth or size.
//
// Why so strict: Warden authorizes what it parsed and forwards what it
// decided. If the upstream (Python, Node, Go with case-insensitive struct
// matching) could read a different value than Warden did — the last of two
// "model" keys, or "Model" instead of "model" — policy would be bypassed.
// Rejecting ambiguity, then forwarding the canonical re-encoding of the
// parsed tree, closes that class of parser-differential attacks.
//
// Tokenizing is done by github.com/go-json-experiment/json/jsontext, which
// already rejects duplicate names and invalid UTF-8 (RFC 8259, RFC 7493
// I-JSON).
package jsonstrict

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// Number is a JSON number kept as its exact source text, so ids and big
// integers survive a round trip without float64 rounding.
type Number string

// Defaults for Options fields left zero.
const (
	DefaultMaxDepth       = 64
	DefaultMaxBytes int64 = 4 << 20
)

// Options bounds a Parse. The zero value means the defaults.
type Options struct {
	// MaxDepth is the deepest nesting of objects and arrays allowed; the
	// top-level object or array is depth 1. Default 64.
	MaxDepth int
	// MaxBytes is the largest document accepted. Default 4 MiB.
	MaxBytes int64
}

func (o Options) withDefaults() Options {
	if o.MaxDepth <= 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	return o
}

// Error is a parse failure as a client may see it: a byte offset and a
// fixed reason. It never quotes the document, so it is safe to send back
// and to log.
type Error struct {
	// Offset is the byte offset at or near which the problem was found.
	Offset int64
	// Msg is a short fixed reason such as "duplicate object key".
	Msg string
}

func (e *Error) Error() string {
	return fmt.Sprintf("jsonstrict: %s at offset %d", e.Msg, e.Offset)
}

// Fixed reasons used in Error.Msg. Callers may compare against them.
const (
	MsgTooLarge       = "document too large"
	MsgTooDeep        = "nesting too deep"
	MsgDuplicateKey   = "duplicate object key"
	MsgFoldedKey      = "object keys differ only in case"
	MsgInvalidUTF8    = "invalid UTF-8"
	MsgInvalidEscape  = "invalid escape sequence"
	MsgInvalidChar    = "invalid character"
	MsgUnexpectedEOF  = "unexpected end of input"
	MsgTrailingData   = "trailing data after JSON value"
	MsgInvalidSyntax  = "invalid JSON"
	MsgFoldedKnownKey = "key differs only in case from a known field"
)

// foldIndexThreshold is the object size above which fold variants are
// found through a map of fold keys instead of pairwise comparison.
const foldIndexThreshold = 8

type frame struct {
	obj   map[string]any
	arr   []any
	key   string
	fold  map[string]struct{}
	isObj bool
	// wantKey is true when the next token in an object is a name.
	wantKey bool
}

// Parse strictly parses data into a tree of nil, bool, string, Number,
// []any and map[string]any. Any ambiguity is an *Error.
func Parse(data []byte, opt Options) (any, error) {
	opt = opt.withDefaults()
	if int64(len(data)) > opt.MaxBytes {
		return nil, &Error{Offset: opt.MaxBytes, Msg: MsgTooLarge}
	}
	// A *bytes.Buffer lets the decoder parse in place without copying.
	dec := jsontext.NewDecoder(bytes.NewBuffer(data),
		jsontext.AllowDuplicateNames(false), jsontext.AllowInvalidUTF8(false))
	stack := make([]frame, 0, 16)
	for {
		if dec.PeekKind() == '"' {
			// Strings go through ReadValue: the raw bytes are already
			// validated, and unescaped names can be interned without
			// allocating.
			raw, err := dec.ReadValue()
			if err != nil {
				return nil, convertErr(err, dec.InputOffset())
			}
			if n := len(stack); n > 0 && stack[n-1].wantKey {
				s, err := unquote(raw, true)
				if err != nil {
					return nil, convertErr(err, dec.InputOffset())
				}
				f := &stack[n-1]
				if err := f.checkKey(s); err != nil {
					err.Offset = dec.InputOffset()
					return nil, err
				}
				f.key, f.wantKey = s, false
				continue
			}
			s, err := unquote(raw, false)
			if err != nil {
				return nil, convertErr(err, dec.InputOffset())
			}
			if root, done := add(&stack, s); done {
				return finish(dec, root)
			}
			continue
		}
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, convertErr(err, dec.InputOffset())
		}
		var v any
		switch k := tok.Kind(); k {
		case '{', '[':
			if len(stack) >= opt.MaxDepth {
				return nil, &Error{Offset: dec.InputOffset() - 1, Msg: MsgTooDeep}
			}
			if k == '{' {
				stack = append(stack, frame{obj: map[string]any{}, isObj: true, wantKey: true})
			} else {
				stack = append(stack, frame{arr: []any{}})
			}
			continue
		case '}':
			v = stack[len(stack)-1].obj
			stack = stack[:len(stack)-1]
		case ']':
			v = stack[len(stack)-1].arr
			stack = stack[:len(stack)-1]
		case 'n':
			v = nil
		case 't':
			v = true
		case 'f':
			v = false
		case '0':
			v = Number(tok.String())
		default:
			return nil, &Error{Offset: dec.InputOffset(), Msg: MsgInvalidSyntax}
		}
		if root, done := add(&stack, v); done {
			return finish(dec, root)
		}
	}
}

// add stores a finished value into the innermost container, or reports it
// as the root when the stack is empty.
func add(stack *[]frame, v any) (any, bool) {
	if len(*stack) == 0 {
		return v, true
	}
	f := &(*stack)[len(*stack)-1]
	if f.isObj {
		f.obj[f.key] = v
		f.key, f.wantKey = "", true
	} else {
		f.arr = append(f.arr, v)
	}
	return nil, false
}

// finish rejects anything but whitespace after the root value.
func finish(dec *jsontext.Decoder, root any) (any, error) {
	if _, err := dec.ReadToken(); err != io.EOF {
		return nil, &Error{Offset: dec.InputOffset(), Msg: MsgTrailingData}
	}
	return root, nil
}

// unquote turns a raw, already validated JSON string into a Go string.
// Strings without escapes are sliced directly; common protocol names and
// values are interned so they cost no allocation.
func unquote(raw []byte, key bool) (string, error) {
	content := raw[1 : len(raw)-1]
	if bytes.IndexByte(content, '\\') < 0 {
		if s, ok := interned[string(content)]; ok {
			return s, nil
		}
		return string(content), nil
	}
	b, err := jsontext.AppendUnquote(nil, raw)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// checkKey rejects a name that is a fold variant of one already in the
// object (exact duplicates are rejected by jsontext before we get here, and
// again here for safety).
func (f *frame) checkKey(s string) *Error {
	if _, dup := f.obj[s]; dup {
		return &Error{Msg: MsgDuplicateKey}
	}
	if f.fold == nil && len(f.obj) < foldIndexThreshold {
		for k := range f.obj {
			if strings.EqualFold(k, s) {
				return &Error{Msg: MsgFoldedKey}
			}
		}
		return nil
	}
	if f.fold == nil {
		f.fold = make(map[string]struct{}, 2*len(f.obj))
		for k := range f.obj {
			f.fold[foldKey(k)] = struct{}{}
		}
	}
	fk := foldKey(s)
	if _, ok := f.fold[fk]; ok {
		return &Error{Msg: MsgFoldedKey}
	}
	f.fold[fk] = struct{}{}
	return nil
}

// foldKey maps s to a canonical representative of its strings.EqualFold
// class: every rune becomes the smallest rune of its simple-fold orbit.
// Two strings are EqualFold exactly when their fold keys are equal.
func foldKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		b.WriteRune(foldRune(r))
	}
	return b.String()
}

func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < m {
			m = f
		}
	}
	return m
}

// convertErr turns a jsontext error into an *Error with a fixed message,
// dropping any quoted input the original carried.
func convertErr(err error, off int64) *Error {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return &Error{Offset: off, Msg: MsgUnexpectedEOF}
	}
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		off = se.ByteOffset
		if errors.Is(se.Err, io.ErrUnexpectedEOF) {
			return &Error{Offset: off, Msg: MsgUnexpectedEOF}
		}
		if se.Err == jsontext.ErrDuplicateName {
			return &Error{Offset: off, Msg: MsgDuplicateKey}
		}
		msg := se.Err.Error()
		switch {
		case strings.Contains(msg, "UTF-8"):
			return &Error{Offset: off, Msg: MsgInvalidUTF8}
		case strings.Contains(msg, "escape sequence"), strings.Contains(msg, "surrogate"):
			return &Error{Offset: off, Msg: MsgInvalidEscape}
		case strings.Contains(msg, "invalid character"):
			return &Error{Offset: off, Msg: MsgInvalidChar}
		}
	}
	return &Error{Offset: off, Msg: MsgInvalidSyntax}
}

// CheckKeys returns an *Error if obj has a key that is not exactly one of
// known but would be read as one by a lenient upstream: a case or
// Unicode-fold variant ("Model", "ſtream"), or a known name followed by a
// NUL and anything (C-string truncation). Protocols call it with the field
// names they read, because those are the fields whose value must be the
// one Warden decided on.
func CheckKeys(obj map[string]any, known ...string) error {
	for k := range obj {
		if containsString(known, k) {
			continue
		}
		t := k
		if i := strings.IndexByte(t, 0); i >= 0 {
			t = t[:i]
		}
		for _, name := range known {
			if strings.EqualFold(t, name) {
				return &Error{Msg: MsgFoldedKnownKey + " " + quoteName(name)}
			}
		}
	}
	return nil
}

// quoteName quotes one of the caller's own known field names (never input).
func quoteName(s string) string { return `"` + s + `"` }

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
