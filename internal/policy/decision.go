package policy

import (
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/wardenhq/warden/internal/protocol"
)

var (
	keyAllow       = ast.StringTerm("allow")
	keyReasons     = ast.StringTerm("reasons")
	keyObligations = ast.StringTerm("obligations")
)

// parseDecision reads a decision document: an object with allow (boolean,
// required), reasons (array of strings, optional) and obligations (object
// or null, optional). Other keys are ignored so policies can carry extra
// detail for tests. Anything else is ErrMalformed and a deny.
func parseDecision(v ast.Value) (protocol.Decision, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return failed(ReasonError), fmt.Errorf("%w: want an object, got %s", ErrMalformed, ast.ValueName(v))
	}
	at := obj.Get(keyAllow)
	if at == nil {
		return failed(ReasonError), fmt.Errorf("%w: allow is missing", ErrMalformed)
	}
	allow, ok := at.Value.(ast.Boolean)
	if !ok {
		return failed(ReasonError), fmt.Errorf("%w: allow: want a boolean, got %s", ErrMalformed, ast.ValueName(at.Value))
	}
	d := protocol.Decision{Allow: bool(allow)}
	if rt := obj.Get(keyReasons); rt != nil {
		arr, ok := rt.Value.(*ast.Array)
		if !ok {
			return failed(ReasonError), fmt.Errorf("%w: reasons: want an array, got %s", ErrMalformed, ast.ValueName(rt.Value))
		}
		d.Reasons = make([]string, 0, arr.Len())
		for i := range arr.Len() {
			s, ok := arr.Elem(i).Value.(ast.String)
			if !ok {
				return failed(ReasonError), fmt.Errorf("%w: reasons[%d]: want a string, got %s", ErrMalformed, i, ast.ValueName(arr.Elem(i).Value))
			}
			d.Reasons = append(d.Reasons, string(s))
		}
	}
	if ot := obj.Get(keyObligations); ot != nil {
		switch o := ot.Value.(type) {
		case ast.Null:
		case ast.Object:
			if o.Len() > 0 {
				m, err := ast.JSON(o)
				if err != nil {
					return failed(ReasonError), fmt.Errorf("%w: obligations: %w", ErrMalformed, err)
				}
				d.Obligations = m.(map[string]any)
			}
		default:
			return failed(ReasonError), fmt.Errorf("%w: obligations: want an object, got %s", ErrMalformed, ast.ValueName(ot.Value))
		}
	}
	if !d.Allow {
		d.Obligations = nil
		if len(d.Reasons) == 0 {
			d.Reasons = []string{ReasonDenied}
		}
	}
	return d, nil
}

// failed is the deny returned with an evaluation failure.
func failed(reason string) protocol.Decision {
	return protocol.Decision{Allow: false, Reasons: []string{reason}}
}
