package admission

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
)

// TestChartAdmissionConfigLoads renders deploy/helm/warden and loads the
// admission config it ships with the same strict loader the binary uses.
func TestChartAdmissionConfigLoads(t *testing.T) {
	ch, err := loader.Load("../../../deploy/helm/warden")
	if err != nil {
		t.Fatal(err)
	}
	vals, err := chartutil.ReadValuesFile("../../../deploy/helm/warden/ci/scan-values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	vals["admission"] = map[string]any{"namespaces": map[string]any{"prod": "enforce"}}
	top, err := chartutil.ToRenderValues(ch, vals.AsMap(), chartutil.ReleaseOptions{Name: "w", Namespace: "warden"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := engine.Render(ch, top)
	if err != nil {
		t.Fatal(err)
	}
	var data string
	for _, doc := range strings.Split(out["warden/templates/admission.yaml"], "\n---\n") {
		var cm struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		if err := yaml.Unmarshal([]byte(doc), &cm); err != nil {
			t.Fatal(err)
		}
		if cm.Kind == "ConfigMap" {
			data = cm.Data["admission.yaml"]
		}
	}
	if data == "" {
		t.Fatal("no admission ConfigMap rendered")
	}
	p := filepath.Join(t.TempDir(), "admission.yaml")
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatalf("chart's admission config does not load: %v\n%s", err, data)
	}
	if cfg.mode("prod") != ModeEnforce || cfg.mode("other") != ModeWarn {
		t.Fatalf("modes not carried through: %+v", cfg.Namespaces)
	}
}
