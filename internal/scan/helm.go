package scan

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/strvals"
)

// helmErrLocRE finds "chart/templates/x.yaml:12" in Helm engine errors
// ("template: c/templates/x.yaml:12:3: executing …" and
// "execution error at (c/templates/x.yaml:12:3): …").
var helmErrLocRE = regexp.MustCompile(`([A-Za-z0-9_.\-/]+\.(?:yaml|yml|tpl|txt|json)):(\d+)(?::\d+)?`)

// scanChart renders a chart in-process with the Helm library (no helm
// binary, no network) and scans what it renders. A template that fails to
// render is reported and left out, and the rest of the chart is rendered
// again, so one broken template does not hide the others.
func (ss *session) scanChart(dir string) {
	ch, err := loader.Load(dir)
	if err != nil {
		ss.fail(&InputError{File: dir, Err: fmt.Errorf("helm: load chart: %w", err)})
		return
	}
	if err := checkVendored(ch); err != nil {
		ss.fail(&InputError{File: filepath.Join(dir, "Chart.yaml"), Err: err})
		return
	}
	vals, err := ss.s.helmValues()
	if err != nil {
		ss.fail(&InputError{File: dir, Err: err})
		return
	}
	if err := chartutil.ProcessDependenciesWithMerge(ch, vals); err != nil {
		ss.fail(&InputError{File: filepath.Join(dir, "Chart.yaml"), Err: fmt.Errorf("helm: dependencies: %w", err)})
		return
	}
	hc := ss.s.cfg.Helm
	opts := chartutil.ReleaseOptions{Name: cmpOr(hc.ReleaseName, "warden-scan"), Namespace: cmpOr(hc.Namespace, "default"), Revision: 1, IsInstall: true}
	top, err := chartutil.ToRenderValues(ch, vals, opts, chartutil.DefaultCapabilities)
	if err != nil {
		ss.fail(&InputError{File: filepath.Join(dir, "values.yaml"), Err: fmt.Errorf("helm: values: %w", err)})
		return
	}
	var rendered map[string]string
	for attempt := 0; ; attempt++ {
		rendered, err = engine.Render(ch, top)
		if err == nil {
			break
		}
		file, line, tmpl := helmErrLocation(dir, ch.Name(), err)
		ss.fail(&InputError{File: file, Line: line, Err: fmt.Errorf("helm: render: %s", oneLine(err.Error()))})
		if tmpl == "" || !removeTemplate(ch, tmpl) || attempt > 200 {
			return
		}
	}
	origin := "helm:" + ch.Name()
	for _, name := range slices.Sorted(maps.Keys(rendered)) {
		base := filepath.Base(name)
		if strings.HasPrefix(base, "_") || strings.HasSuffix(name, "NOTES.txt") {
			continue
		}
		content := rendered[name]
		if strings.TrimSpace(content) == "" {
			continue
		}
		file := filepath.Join(dir, strings.TrimPrefix(name, ch.Name()+"/"))
		decodeStream(strings.NewReader(content), file, origin, ss.addObject, ss.fail)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// helmErrLocation maps an engine error to the template file on disk.
func helmErrLocation(dir, chartName string, err error) (file string, line int, tmpl string) {
	m := helmErrLocRE.FindStringSubmatch(err.Error())
	if m == nil {
		return dir, 0, ""
	}
	line, _ = strconv.Atoi(m[2])
	return filepath.Join(dir, strings.TrimPrefix(m[1], chartName+"/")), line, m[1]
}

// removeTemplate drops the template whose full render name is tmpl from ch
// or a subchart; false if not found (or a helper that everything needs).
func removeTemplate(ch *chart.Chart, tmpl string) bool {
	var walk func(c *chart.Chart, prefix string) bool
	walk = func(c *chart.Chart, prefix string) bool {
		for i, t := range c.Templates {
			if prefix+t.Name == tmpl {
				if strings.HasPrefix(filepath.Base(t.Name), "_") {
					return false
				}
				c.Templates = append(c.Templates[:i:i], c.Templates[i+1:]...)
				return true
			}
		}
		for _, d := range c.Dependencies() {
			if walk(d, prefix+"charts/"+d.Name()+"/") {
				return true
			}
		}
		return false
	}
	return walk(ch, ch.Name()+"/")
}

// checkVendored refuses charts whose dependencies are not in charts/:
// rendering them would need a download, and a scanner must neither fetch
// nor silently skip.
func checkVendored(ch *chart.Chart) error {
	var missing []string
	have := map[string]bool{}
	for _, d := range ch.Dependencies() {
		have[d.Name()] = true
	}
	for _, d := range ch.Metadata.Dependencies {
		if !have[d.Name] {
			missing = append(missing, fmt.Sprintf("%s %s from %s", d.Name, d.Version, cmpOr(d.Repository, "(no repository)")))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("helm: dependencies not vendored under charts/: %s; run `helm dependency build` first (warden never downloads charts)", strings.Join(missing, ", "))
	}
	for _, d := range ch.Dependencies() {
		if err := checkVendored(d); err != nil {
			return fmt.Errorf("subchart %s: %w", d.Name(), err)
		}
	}
	return nil
}

// helmValues merges --values files (in order) and then --set assignments.
func (s *Scanner) helmValues() (map[string]any, error) {
	base := map[string]any{}
	for _, f := range s.cfg.Helm.ValuesFiles {
		v, err := chartutil.ReadValuesFile(f)
		if err != nil {
			return nil, fmt.Errorf("helm: values file %s: %w", f, err)
		}
		base = mergeValues(base, v.AsMap())
	}
	var errs []error
	for _, set := range s.cfg.Helm.Set {
		if err := strvals.ParseInto(set, base); err != nil {
			errs = append(errs, fmt.Errorf("helm: --set %q: %w", set, err))
		}
	}
	return base, errors.Join(errs...)
}

// mergeValues deep-merges b into a the way helm merges -f files.
func mergeValues(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a))
	maps.Copy(out, a)
	for k, v := range b {
		if bv, ok := v.(map[string]any); ok {
			if av, ok := out[k].(map[string]any); ok {
				out[k] = mergeValues(av, bv)
				continue
			}
		}
		out[k] = v
	}
	return out
}
