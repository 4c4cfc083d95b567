package policy

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/wardenhq/warden/internal/protocol"
)

// matchSchema validates doc against the documented input schema with OPA's
// own JSON Schema implementation (json.match_schema).
func matchSchema(t *testing.T, doc any) (bool, any) {
	t.Helper()
	schema, err := os.ReadFile("../../docs/policy-input.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rego.New(
		rego.Query("x := json.match_schema(input.doc, input.schema)"),
		rego.Input(map[string]any{"doc": doc, "schema": string(schema)}),
	).Eval(context.Background())
	if err != nil {
		t.Fatalf("match_schema: %v", err)
	}
	res := rs[0].Bindings["x"].([]any)
	return res[0].(bool), res[1]
}

// TestInputMatchesSchema keeps docs/policy-input.schema.json and the engine
// in step: every document the engine builds must validate, and the schema
// is closed (additionalProperties false), so a new input field fails here
// until it is documented.
func TestInputMatchesSchema(t *testing.T) {
	e := newEngine(t, configExample())
	inputs := map[string]*Input{
		"zero": {},
		"full": {
			Subject:   Subject{SpiffeID: "spiffe://example.org/agent/support", AuthMethod: "jwt"},
			Request:   Request{Method: "POST", Path: "/v1/chat/completions", Host: "llm", Headers: map[string]string{"Content-Type": "application/json"}},
			Resource:  map[string]any{"kind": "openai", "backend": "llm", "model": "gpt-4o", "arguments": map[string]any{"n": 1}, "collection": []string{"a"}},
			Action:    protocol.ActionInvoke,
			Operation: "chat.completions",
			Guards:    map[string]any{"pii": map[string]any{"found": true}},
			Time:      time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)),
		},
	}
	for name, c := range loadGolden(t) {
		in, err := ParseInput(c.Input)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		inputs["golden/"+name] = in
	}
	for name, in := range inputs {
		doc, err := e.document(in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if ok, errs := matchSchema(t, doc); !ok {
			t.Errorf("%s: engine input does not match the documented schema: %v", name, errs)
		}
	}

	// The schema must be able to reject: an undocumented key, a wrong type.
	doc, err := e.document(inputs["full"])
	if err != nil {
		t.Fatal(err)
	}
	m := doc.(map[string]any)
	m["undocumented"] = true
	if ok, _ := matchSchema(t, m); ok {
		t.Error("schema accepted an undocumented top-level key")
	}
	delete(m, "undocumented")
	m["subject"].(map[string]any)["spiffe_id"] = 7
	if ok, _ := matchSchema(t, m); ok {
		t.Error("schema accepted a numeric spiffe_id")
	}
}

// TestDocsExamples parses every JSON input example in docs/policy.md (code
// blocks after an "<!-- input -->" marker) and checks it against the schema
// once the engine has built it, so the prose cannot drift either.
func TestDocsExamples(t *testing.T) {
	md, err := os.ReadFile("../../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)<!-- input -->\\s*```json\\n(.*?)```").FindAllSubmatch(md, -1)
	if len(blocks) == 0 {
		t.Fatal("docs/policy.md has no <!-- input --> examples")
	}
	e := newEngine(t, configExample())
	for i, b := range blocks {
		in, err := ParseInput(b[1])
		if err != nil {
			t.Errorf("example %d: %v", i, err)
			continue
		}
		doc, err := e.document(in)
		if err != nil {
			t.Fatal(err)
		}
		if ok, errs := matchSchema(t, doc); !ok {
			t.Errorf("example %d: %v", i, errs)
		}
	}
	// Decision reasons named in the docs must be the ones the code uses.
	for _, r := range []string{ReasonError, ReasonTimeout, ReasonUndefined, ReasonDenied, "no_binding_for_identity", "no_matching_role", "allowed_by_role:", "obligation_conflict:"} {
		if !strings.Contains(string(md), "`"+r) {
			t.Errorf("docs/policy.md does not document reason %q", r)
		}
	}
}
