package policy

import (
	"fmt"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// ParseInput reads a decision input written as the documented input
// document (docs/policy.md), e.g. for `warden policy eval --input`. It is
// strict: unknown keys, duplicate keys, wrong types and trailing data are
// errors, so a typo cannot silently test a different input.
// subject.spiffe_id_patterns is derived by the engine and ignored here.
func ParseInput(b []byte) (*Input, error) {
	v, err := parseJSONStrict(b)
	if err != nil {
		return nil, fmt.Errorf("policy: input: %w", err)
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("policy: input: want an object")
	}
	in := &Input{}
	for k, x := range doc {
		var err error
		switch k {
		case "subject":
			err = parseFields(x, map[string]*string{
				"spiffe_id":    &in.Subject.SpiffeID,
				"trust_domain": &in.Subject.TrustDomain,
				"path":         &in.Subject.Path,
				"auth_method":  &in.Subject.AuthMethod,
			}, "spiffe_id_patterns")
		case "request":
			m, ok := x.(map[string]any)
			if !ok {
				err = fmt.Errorf("want an object")
				break
			}
			rest := map[string]any{}
			for rk, rv := range m {
				if rk == "headers" {
					h, ok := rv.(map[string]any)
					if !ok {
						return nil, fmt.Errorf("policy: input: request.headers: want an object of strings")
					}
					in.Request.Headers = make(map[string]string, len(h))
					for hk, hv := range h {
						s, ok := hv.(string)
						if !ok {
							return nil, fmt.Errorf("policy: input: request.headers.%s: want a string", hk)
						}
						in.Request.Headers[hk] = s
					}
					continue
				}
				if rk == "query" {
					q, ok := rv.(map[string]any)
					if !ok {
						return nil, fmt.Errorf("policy: input: request.query: want an object of string lists")
					}
					in.Request.Query = make(map[string][]string, len(q))
					for qk, qv := range q {
						list, ok := qv.([]any)
						if !ok {
							return nil, fmt.Errorf("policy: input: request.query.%s: want a list of strings", qk)
						}
						for _, e := range list {
							s, ok := e.(string)
							if !ok {
								return nil, fmt.Errorf("policy: input: request.query.%s: want a list of strings", qk)
							}
							in.Request.Query[qk] = append(in.Request.Query[qk], s)
						}
					}
					continue
				}
				rest[rk] = rv
			}
			err = parseFields(rest, map[string]*string{
				"method": &in.Request.Method,
				"path":   &in.Request.Path,
				"host":   &in.Request.Host,
			})
		case "resource":
			in.Resource, ok = x.(map[string]any)
			if !ok {
				err = fmt.Errorf("want an object")
			}
		case "guards":
			in.Guards, ok = x.(map[string]any)
			if !ok {
				err = fmt.Errorf("want an object")
			}
		case "action":
			in.Action, ok = x.(string)
			if !ok {
				err = fmt.Errorf("want a string")
			}
		case "operation":
			in.Operation, ok = x.(string)
			if !ok {
				err = fmt.Errorf("want a string")
			}
		case "time":
			s, ok := x.(string)
			if !ok {
				err = fmt.Errorf("want an RFC 3339 string")
				break
			}
			in.Time, err = time.Parse(time.RFC3339Nano, s)
		default:
			err = fmt.Errorf("unknown key")
		}
		if err != nil {
			return nil, fmt.Errorf("policy: input: %s: %w", k, err)
		}
	}
	return in, nil
}

// parseFields sets string fields of an object; ignored keys are accepted
// and dropped.
func parseFields(x any, fields map[string]*string, ignored ...string) error {
	m, ok := x.(map[string]any)
	if !ok {
		return fmt.Errorf("want an object")
	}
outer:
	for k, v := range m {
		for _, ig := range ignored {
			if k == ig {
				continue outer
			}
		}
		dst, ok := fields[k]
		if !ok {
			return fmt.Errorf("%s: unknown key", k)
		}
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: want a string", k)
		}
		*dst = s
	}
	return nil
}

// document returns the input document exactly as the policy sees it, as
// JSON-compatible Go values (the schema test validates it).
func (e *Engine) document(in *Input) (any, error) {
	now := in.Time
	if now.IsZero() {
		now = e.now()
	}
	v, err := in.value(now, nil)
	if err != nil {
		return nil, err
	}
	return ast.JSON(v)
}
