package scan

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// psaModuleDir locates the pinned k8s.io/pod-security-admission module in
// the module cache; its test/testdata fixtures are the oracle.
func psaModuleDir(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "k8s.io/pod-security-admission").Output()
	if err != nil {
		t.Fatalf("go list pod-security-admission: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		t.Fatal("pod-security-admission module not in the module cache")
	}
	return dir
}

func decodeOne(t testing.TB, file string) []*Object {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var objs []*Object
	decodeStream(f, file, "", func(o *Object) { objs = append(objs, o) }, func(e *InputError) { t.Errorf("%v", e) })
	return objs
}

// TestPSSAgreesWithLibrary checks every fixture the library ships for the
// pinned version: our per-check evaluation must allow exactly what the
// library's own Evaluator allows, match the fixture's pass/fail verdict,
// and name the check the fixture is about.
func TestPSSAgreesWithLibrary(t *testing.T) {
	root := filepath.Join(psaModuleDir(t), "test", "testdata")
	lib, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	idx := newPodPathIndex(nil)
	// A fixture named after a baseline check may fail through the
	// restricted check that overrides it (hostPathVolumes → restrictedVolumes).
	overriddenBy := map[string][]string{}
	for _, c := range policy.DefaultChecks() {
		for _, v := range c.Versions {
			for _, o := range v.OverrideCheckIDs {
				overriddenBy[strings.ToLower(string(o))] = append(overriddenBy[strings.ToLower(string(o))], strings.ToLower(string(c.ID)))
			}
		}
	}
	n := 0
	for _, level := range []psaapi.Level{psaapi.LevelBaseline, psaapi.LevelRestricted} {
		versions, err := os.ReadDir(filepath.Join(root, string(level)))
		if err != nil {
			t.Fatal(err)
		}
		for _, vd := range versions {
			v, err := psaapi.ParseVersion(vd.Name())
			if err != nil {
				t.Fatalf("%s: %v", vd.Name(), err)
			}
			lv := psaapi.LevelVersion{Level: level, Version: v}
			ours, err := newPSSEvaluator(lv)
			if err != nil {
				t.Fatal(err)
			}
			for _, verdict := range []string{"pass", "fail"} {
				files, _ := filepath.Glob(filepath.Join(root, string(level), vd.Name(), verdict, "*.yaml"))
				for _, file := range files {
					for _, o := range decodeOne(t, file) {
						pods, err := extractPods(o, idx)
						if err != nil || len(pods) != 1 {
							t.Fatalf("%s: %d pods, %v", file, len(pods), err)
						}
						p := pods[0]
						fails := ours.evaluate(p.Meta, p.Spec)
						libAllowed := policy.AggregateCheckResults(lib.EvaluatePod(lv, p.Meta, p.Spec)).Allowed
						n++
						if (len(fails) == 0) != libAllowed {
							t.Errorf("%s: ours allowed=%v, library allowed=%v (%v)", file, len(fails) == 0, libAllowed, fails)
						}
						if (verdict == "pass") != libAllowed {
							t.Errorf("%s: fixture says %s, library allowed=%v", file, verdict, libAllowed)
						}
						if verdict == "fail" {
							want := strings.TrimRight(strings.TrimSuffix(filepath.Base(file), ".yaml"), "0123456789")
							found := false
							for _, f := range fails {
								id := strings.ToLower(string(f.ID))
								if id == want || (level == psaapi.LevelRestricted && slices.Contains(overriddenBy[want], id)) {
									found = true
								}
							}
							if !found {
								t.Errorf("%s: want check %s among %v", file, want, fails)
							}
						}
					}
				}
			}
		}
	}
	if n < 1000 {
		t.Fatalf("only %d fixtures evaluated; fixture layout changed?", n)
	}
	t.Logf("%d fixtures agree", n)
}

func TestPSSPrivilegedLevelChecksNothing(t *testing.T) {
	e, err := newPSSEvaluator(psaapi.LevelVersion{Level: psaapi.LevelPrivileged, Version: psaapi.LatestVersion()})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.checks) != 0 {
		t.Fatalf("privileged level has %d checks", len(e.checks))
	}
}
