package scan

import (
	"context"
	"testing"
)

// TestOwnDeploymentIsClean scans Warden's own chart and Dockerfile at the
// strictest setting (restricted PSS, annotations ignored, every opt-in
// rule) and requires zero findings and zero input errors.
func TestOwnDeploymentIsClean(t *testing.T) {
	cfg := Config{Strict: true, AllRules: true}
	cfg.Helm.ValuesFiles = []string{"../../deploy/helm/warden/ci/scan-values.yaml"}
	s, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := s.Scan(context.Background(), []string{"../../deploy/helm/warden", "../../Dockerfile"}, Options{})
	for _, f := range res.Findings {
		t.Errorf("%s %s %s: %s", f.RuleID, f.Location(), f.Object(), f.Message)
	}
	for _, e := range res.Errors {
		t.Errorf("input error: %v", e)
	}
	// Gateway, Redis and webhook objects plus the Dockerfile: a chart that
	// rendered nothing would also have no findings.
	if res.Objects < 15 {
		t.Fatalf("only %d objects scanned", res.Objects)
	}
}

// TestOwnChartRefusesUnpinnedImages: without a digest the chart must not
// render the workloads (and the scan must say so).
func TestOwnChartRefusesUnpinnedImages(t *testing.T) {
	s, err := New(context.Background(), Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := s.Scan(context.Background(), []string{"../../deploy/helm/warden"}, Options{})
	if len(res.Errors) == 0 {
		t.Fatal("chart rendered without image.digest")
	}
}
