package clitest

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/wardenhq/warden/internal/cli"
)

func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

const td = "../../../testdata/scan/"

func TestScanExitCodes(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"findings fail at default threshold", []string{"scan", td + "rbac/input"}, 1},
		{"fail-on none", []string{"scan", "--fail-on", "none", td + "rbac/input"}, 0},
		{"fail-on critical still fails on cluster-admin", []string{"scan", "--fail-on", "critical", td + "rbac/input"}, 1},
		{"clean dockerfile", []string{"scan", td + "dockerfile/input/good"}, 0},
		{"input errors", []string{"scan", "--fail-on", "none", td + "bad-input/input"}, 3},
		{"missing path", []string{"scan", "/nonexistent/path"}, 3},
		{"bad severity", []string{"scan", "--fail-on", "severe", td + "rbac/input"}, 2},
		{"bad format", []string{"scan", "-o", "xml", td + "rbac/input"}, 2},
		{"no path", []string{"scan"}, 2},
		{"bad config", []string{"scan", "-c", td + "rbac/input/rbac.yaml", td + "rbac/input"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := run(t, "", tt.args...)
			if code != tt.want {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.want, out, errs)
			}
		})
	}
}

func TestScanStdinJSON(t *testing.T) {
	manifest := "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: a, image: busybox}\n"
	code, out, errs := run(t, manifest, "scan", "-o", "json", "--fail-on", "none", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var doc struct {
		Findings []struct {
			RuleID string `json:"ruleId"`
			File   string `json:"file"`
			Line   int    `json:"line"`
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	found := false
	for _, f := range doc.Findings {
		if f.RuleID == "K8S030" && f.File == "-" && f.Line == 6 {
			found = true
		}
	}
	if !found {
		t.Fatalf("no K8S030 at -:6 in %s", out)
	}
}

func TestScanHelmFlags(t *testing.T) {
	// --set changes the rendered image tag, so the latest-tag finding goes.
	_, out, _ := run(t, "", "scan", "--fail-on", "none", td+"helm-chart/input")
	if !strings.Contains(out, "K8S030") {
		t.Fatalf("default values should use the latest tag:\n%s", out)
	}
	_, out, _ = run(t, "", "scan", "--fail-on", "none", "--set", "server.image.tag=1.0", td+"helm-chart/input")
	if strings.Contains(out, "K8S030") {
		t.Fatalf("--set did not reach the chart:\n%s", out)
	}
	_, out, _ = run(t, "", "scan", "--fail-on", "none", "-f", td+"helm-chart/values-prod.yaml", td+"helm-chart/input")
	if !strings.Contains(out, "AI001") || !strings.Contains(out, "CRITICAL") {
		t.Fatalf("--values did not expose the service:\n%s", out)
	}
}

func TestScanStrictIgnoresAnnotations(t *testing.T) {
	_, out, _ := run(t, "", "scan", "-o", "json", "--fail-on", "none", td+"strict/input")
	if !strings.Contains(out, `"suppressedBy": "annotation"`) {
		t.Fatalf("annotation did not suppress without --strict:\n%s", out)
	}
	_, out, _ = run(t, "", "scan", "-o", "json", "--fail-on", "none", "--strict", td+"strict/input")
	if strings.Contains(out, `"suppressed": true`) {
		t.Fatalf("--strict still honoured an annotation:\n%s", out)
	}
}

func TestAdmissionRejectsBadConfig(t *testing.T) {
	code, _, errs := run(t, "", "admission", "-c", td+"rbac/input/rbac.yaml")
	if code != 2 || !strings.Contains(errs, "admission") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if code, _, _ := run(t, "", "admission"); code == 0 {
		t.Fatalf("missing -c: exit %d", code)
	}
}
