package policy

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

func addSeeds(f *testing.F, pattern string) {
	f.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds for %s: %v", pattern, err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzParseInput: any bytes either fail to parse or give an input the
// engine can convert.
func FuzzParseInput(f *testing.F) {
	for name, c := range loadGolden(f) {
		_ = name
		f.Add([]byte(c.Input))
	}
	f.Add([]byte(`{"subject": {"spiffe_id": 1}}`))
	f.Add([]byte(`{"time": "yesterday"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := ParseInput(b)
		if err != nil {
			return
		}
		if _, err := in.value(fixedNow, nil); err != nil {
			t.Fatalf("parsed input does not convert: %v", err)
		}
	})
}

// FuzzParseData: any bytes either fail or give a JSON-compatible object.
func FuzzParseData(f *testing.F) {
	addSeeds(f, "testdata/data/*")
	addSeeds(f, "../../policies/roles.example.yaml")
	f.Add([]byte(`{"warden": {"roles": {}}}`))
	f.Add([]byte("a: &x [1]\nb: *x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, name := range []string{"d.yaml", "d.json"} {
			m, err := ParseData(name, b)
			if err != nil {
				continue
			}
			if _, err := ast.InterfaceToValue(m); err != nil {
				t.Fatalf("%s: parsed data is not JSON-compatible: %v", name, err)
			}
		}
	})
}

// FuzzParseDecision: whatever a policy returns, a failure denies with
// policy_error and a deny always has a reason and no obligations.
func FuzzParseDecision(f *testing.F) {
	addSeeds(f, "testdata/decision-docs/*.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := parseJSONStrict(b)
		if err != nil {
			return
		}
		v, err := ast.InterfaceToValue(x)
		if err != nil {
			return
		}
		d, err := parseDecision(v)
		if err != nil {
			if d.Allow || len(d.Reasons) != 1 || d.Reasons[0] != ReasonError {
				t.Fatalf("failure gave %+v", d)
			}
			return
		}
		if !d.Allow && (len(d.Reasons) == 0 || d.Obligations != nil) {
			t.Fatalf("deny %+v: want a reason and no obligations", d)
		}
	})
}

// FuzzDecide: the engine never allows what the example roles do not grant,
// whatever the resource fields and the action.
func FuzzDecide(f *testing.F) {
	e := newEngine(f, configExample())
	for _, c := range loadGolden(f) {
		f.Add([]byte(c.Input))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := ParseInput(b)
		if err != nil {
			return
		}
		d, err := e.Decide(context.Background(), in)
		if err != nil {
			t.Fatalf("Decide: %v", err)
		}
		ds, err := e.DecideMany(context.Background(), []*Input{in})
		if err != nil {
			t.Fatalf("DecideMany: %v", err)
		}
		if d.Allow != ds[0].Allow {
			t.Fatalf("Decide %+v and DecideMany %+v disagree", d, ds[0])
		}
		if !d.Allow {
			return
		}
		s := in.Subject.complete()
		backend, _ := in.Resource["backend"].(string)
		switch {
		case s.SpiffeID == "spiffe://example.org/pipeline/training" && coarseAction(in.Action):
		case s.SpiffeID == "spiffe://example.org/agent/support" && (backend == "llm" && in.Action == "invoke" || backend == "kb" && in.Action == "read"):
		default:
			t.Fatalf("allowed %+v for %+v", d, in)
		}
	})
}
