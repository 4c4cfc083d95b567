package report

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/wardenhq/warden/internal/scan"
)

func scanCase(t *testing.T, name string, cfg scan.Config) *scan.Result {
	t.Helper()
	s, err := scan.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s.Scan(context.Background(), []string{"../../../testdata/scan/" + name + "/input"}, scan.Options{})
}

// Secret values from testdata/scan/secrets must never reach any output.
var secretValues = []string{"hunter2-but-longer", "hf_notarealtoken", "sk-ant-api03", "s3cr3t-value", "not-really-a-key"}

func TestOutputsNeverContainSecretValues(t *testing.T) {
	res := scanCase(t, "secrets", scan.Config{})
	if len(res.Findings) == 0 {
		t.Fatal("no findings")
	}
	for _, format := range Formats {
		var b bytes.Buffer
		if err := Write(&b, format, res, "test"); err != nil {
			t.Fatal(err)
		}
		for _, v := range secretValues {
			if strings.Contains(b.String(), v) {
				t.Errorf("%s output contains secret value %q", format, v)
			}
		}
		if !strings.Contains(b.String(), "DB_PASSWORD") {
			t.Errorf("%s output does not name the key DB_PASSWORD", format)
		}
	}
}

func TestSARIF(t *testing.T) {
	cfg, err := scan.LoadConfig("../../../testdata/scan/suppressions/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res := scanCase(t, "suppressions", *cfg)
	var b bytes.Buffer
	if err := SARIF(&b, res, "1.2.3"); err != nil {
		t.Fatal(err)
	}
	var log sarifLog
	if err := json.Unmarshal(b.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	if log.Version != "2.1.0" || len(log.Runs) != 1 {
		t.Fatalf("version %q, %d runs", log.Version, len(log.Runs))
	}
	run := log.Runs[0]
	if len(run.Results) != len(res.Findings) {
		t.Fatalf("%d results for %d findings", len(run.Results), len(res.Findings))
	}
	suppressed := 0
	for _, r := range run.Results {
		if run.Tool.Driver.Rules[r.RuleIndex].ID != r.RuleID {
			t.Errorf("ruleIndex %d points at %s, not %s", r.RuleIndex, run.Tool.Driver.Rules[r.RuleIndex].ID, r.RuleID)
		}
		if reg := r.Locations[0].PhysicalLocation.Region; reg == nil || reg.StartLine < 1 {
			t.Errorf("%s: no start line", r.RuleID)
		}
		if len(r.Suppressions) > 0 {
			suppressed++
			if r.Suppressions[0].Justification == "" {
				t.Errorf("%s: suppression without justification", r.RuleID)
			}
		}
	}
	if want := Summarize(res).Suppressed; suppressed != want || want == 0 {
		t.Errorf("%d suppressed results, want %d (>0)", suppressed, want)
	}
	seen := map[string]bool{}
	for _, r := range run.Tool.Driver.Rules {
		if seen[r.ID] {
			t.Errorf("rule %s listed twice", r.ID)
		}
		seen[r.ID] = true
	}
}

func TestJUnit(t *testing.T) {
	res := scanCase(t, "bad-input", scan.Config{})
	var b bytes.Buffer
	if err := JUnit(&b, res); err != nil {
		t.Fatal(err)
	}
	var s junitSuites
	if err := xml.Unmarshal(b.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	sum := Summarize(res)
	if s.Failures != sum.Findings || s.Errors != len(res.Errors) || s.Errors == 0 {
		t.Fatalf("junit failures=%d errors=%d; want %d and %d", s.Failures, s.Errors, sum.Findings, len(res.Errors))
	}
}

func TestJUnitCleanScanHasOnePassingCase(t *testing.T) {
	var b bytes.Buffer
	if err := JUnit(&b, &scan.Result{Objects: 3}); err != nil {
		t.Fatal(err)
	}
	var s junitSuites
	if err := xml.Unmarshal(b.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	if s.Tests != 1 || s.Failures != 0 {
		t.Fatalf("tests=%d failures=%d", s.Tests, s.Failures)
	}
}

func TestTableAndJSON(t *testing.T) {
	res := scanCase(t, "rbac", scan.Config{})
	var tb bytes.Buffer
	if err := Table(&tb, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"K8S011", "CRITICAL", "rbac.yaml:14", "ClusterRoleBinding agent-admin"} {
		if !strings.Contains(tb.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tb.String())
		}
	}
	var jb bytes.Buffer
	if err := JSON(&jb, res); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Summary  Summary        `json:"summary"`
		Findings []scan.Finding `json:"findings"`
	}
	if err := json.Unmarshal(jb.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Findings) != len(res.Findings) || doc.Findings[0].Severity != res.Findings[0].Severity {
		t.Fatalf("JSON round trip lost findings: %d vs %d", len(doc.Findings), len(res.Findings))
	}
	if err := Write(&jb, "xml", res, ""); err == nil {
		t.Fatal("unknown format accepted")
	}
}
