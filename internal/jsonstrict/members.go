package jsonstrict

import (
	"bytes"
	"io"

	"github.com/go-json-experiment/json/jsontext"
)

// ParseMembers validates data as a single JSON object and strictly parses
// only the named top-level members, skipping the rest without building
// them. Response paths use it to read "usage" out of a large body (an
// embeddings list) without allocating a tree for every float.
//
// The whole document is still checked: syntax, UTF-8, duplicate names,
// trailing data, MaxBytes; fold-variant checks and MaxDepth apply to the
// parsed members.
func ParseMembers(data []byte, opt Options, names ...string) (map[string]any, error) {
	opt = opt.withDefaults()
	if int64(len(data)) > opt.MaxBytes {
		return nil, &Error{Offset: opt.MaxBytes, Msg: MsgTooLarge}
	}
	dec := jsontext.NewDecoder(bytes.NewBuffer(data))
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, convertErr(err, dec.InputOffset())
	}
	if tok.Kind() != '{' {
		return nil, &Error{Offset: 0, Msg: "not a JSON object"}
	}
	out := map[string]any{}
	for dec.PeekKind() != '}' {
		nameTok, err := dec.ReadToken()
		if err != nil {
			return nil, convertErr(err, dec.InputOffset())
		}
		name := nameTok.String()
		if !containsString(names, name) {
			if err := dec.SkipValue(); err != nil {
				return nil, convertErr(err, dec.InputOffset())
			}
			continue
		}
		off := dec.InputOffset()
		raw, err := dec.ReadValue()
		if err != nil {
			return nil, convertErr(err, dec.InputOffset())
		}
		v, err := Parse(raw, Options{MaxDepth: opt.MaxDepth - 1, MaxBytes: opt.MaxBytes})
		if err != nil {
			if je, ok := err.(*Error); ok {
				je.Offset += off
			}
			return nil, err
		}
		out[name] = v
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, convertErr(err, dec.InputOffset())
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return nil, &Error{Offset: dec.InputOffset(), Msg: MsgTrailingData}
	}
	return out, nil
}
