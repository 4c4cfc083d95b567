package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runPolicyCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func writePolicyFile(t *testing.T, dir, name, src string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPolicyTestCommand(t *testing.T) {
	code, out, _ := runPolicyCLI(t, "", "policy", "test", "--data", "../../policies/roles.example.yaml")
	if code != 0 || !strings.Contains(out, "PASS:") {
		t.Errorf("embedded library: code %d, output:\n%s", code, out)
	}

	dir := t.TempDir()
	writePolicyFile(t, dir, "p.rego", "package demo\n\nallow if input.ok\n")
	writePolicyFile(t, dir, "p_test.rego", "package demo_test\n\nimport data.demo\n\ntest_ok if demo.allow with input as {\"ok\": true}\n\ntest_broken if demo.allow with input as {\"ok\": false}\n")
	code, out, _ = runPolicyCLI(t, "", "policy", "test", dir)
	if code != 1 || !strings.Contains(out, "FAIL  data.demo_test.test_broken") || !strings.Contains(out, "p_test.rego:7") || !strings.Contains(out, "FAIL: 1/2") {
		t.Errorf("failing test: code %d, output:\n%s", code, out)
	}

	writePolicyFile(t, dir, "p.rego", "package demo\n\nallow if {\n\tinput.ok ==\n}\n")
	code, _, errOut := runPolicyCLI(t, "", "policy", "test", dir)
	if code != 1 || !strings.Contains(errOut, "p.rego:") {
		t.Errorf("compile error: code %d, stderr:\n%s", code, errOut)
	}
}

func TestPolicyEvalCommand(t *testing.T) {
	input := `{"subject": {"spiffe_id": "spiffe://example.org/agent/support"}, "resource": {"kind": "qdrant", "backend": "kb"}, "action": "read", "operation": "points.search"}`
	code, out, errOut := runPolicyCLI(t, input, "policy", "eval", "--timeout", "1m", "--data", "../../policies/roles.example.yaml", "--input", "-")
	if code != 0 || !strings.Contains(out, "decision:    allow") || !strings.Contains(out, "allowed_by_role:support-reader") {
		t.Errorf("allow: code %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	in := writePolicyFile(t, t.TempDir(), "in.json", strings.Replace(input, `"read"`, `"write"`, 1))
	code, out, _ = runPolicyCLI(t, "", "policy", "eval", "--timeout", "1m", "--data", "../../policies/roles.example.yaml", "--input", in, "--format", "json")
	if code != 0 || !strings.Contains(out, `"allow": false`) || !strings.Contains(out, "no_matching_role") {
		t.Errorf("deny: code %d, stdout:\n%s", code, out)
	}

	dir := t.TempDir()
	writePolicyFile(t, dir, "p.rego", "package warden.authz\n\ndecision := {\"allow\": \"yes\"}\n")
	code, out, errOut = runPolicyCLI(t, input, "policy", "eval", "--timeout", "1m", "--policy", dir, "--input", "-")
	if code != 1 || !strings.Contains(out, "policy_error") || !strings.Contains(errOut, "malformed") {
		t.Errorf("malformed decision: code %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	if code, _, _ := runPolicyCLI(t, "", "policy", "eval"); code != 2 {
		t.Errorf("missing --input: code %d; want 2", code)
	}
	if code, _, errOut := runPolicyCLI(t, `{"subjct": {}}`, "policy", "eval", "--input", "-"); code != 1 || !strings.Contains(errOut, "subjct") {
		t.Errorf("unknown input key: code %d, stderr %s", code, errOut)
	}
}
