package scan

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Options are per-run settings that are not part of the rules.
type Options struct {
	// Stdin is read when a path is "-".
	Stdin io.Reader
	// Progress, if set, is called every few hundred objects.
	Progress func(objects int)
}

// Scan checks every path: files (YAML/JSON manifests, Dockerfiles),
// directories (walked; a directory with Chart.yaml is rendered as a Helm
// chart, one with a kustomization as Kustomize), .tgz charts, and "-" for
// standard input. Nothing is skipped silently: what cannot be scanned is
// in Result.Errors.
func (s *Scanner) Scan(ctx context.Context, paths []string, opt Options) *Result {
	ss := s.newSession(ctx)
	ss.progress = opt.Progress
	for _, p := range paths {
		if ctx.Err() != nil {
			ss.fail(&InputError{File: p, Err: ctx.Err()})
			break
		}
		ss.scanPath(p, opt.Stdin)
	}
	return ss.finish()
}

func (ss *session) scanPath(p string, stdin io.Reader) {
	if p == "-" {
		if stdin == nil {
			ss.fail(&InputError{File: "-", Err: fmt.Errorf("no standard input")})
			return
		}
		decodeStream(stdin, "-", "", ss.addObject, ss.fail)
		return
	}
	st, err := os.Stat(p)
	if err != nil {
		ss.fail(&InputError{File: p, Err: err})
		return
	}
	if !st.IsDir() {
		ss.scanFile(p, true)
		return
	}
	if ss.scanProject(p) {
		return
	}
	// Walk first, render after: a kustomization that another one in the
	// tree builds on (a base) is scanned only through its overlays.
	var kdirs []string
	err = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err != nil {
			ss.fail(&InputError{File: q, Err: err})
			return nil
		}
		if ss.ctx.Err() != nil {
			return ss.ctx.Err()
		}
		if d.IsDir() {
			if q == p {
				return nil
			}
			if strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" {
				return fs.SkipDir
			}
			if isChartDir(q) {
				ss.scanChart(q)
				return fs.SkipDir
			}
			if kustomizationFile(q) != "" {
				kdirs = append(kdirs, q)
				return fs.SkipDir
			}
			return nil
		}
		ss.scanFile(q, false)
		return nil
	})
	if err != nil {
		ss.fail(&InputError{File: p, Err: err})
	}
	used := map[string]bool{}
	for _, k := range kdirs {
		for _, dep := range kustomizeDeps(k) {
			if dep != absPath(k) {
				used[dep] = true
			}
		}
	}
	for _, k := range kdirs {
		if !used[absPath(k)] {
			ss.scanKustomize(k)
		}
	}
}

func isChartDir(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, "Chart.yaml"))
	return err == nil && !st.IsDir()
}

func absPath(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

// scanProject renders dir if it is a Helm chart or a kustomization.
func (ss *session) scanProject(dir string) bool {
	if isChartDir(dir) {
		ss.scanChart(dir)
		return true
	}
	if kustomizationFile(dir) != "" {
		ss.scanKustomize(dir)
		return true
	}
	return false
}

// scanFile scans one file. explicit files of unknown type are errors;
// during a directory walk they are ignored (READMEs, scripts).
func (ss *session) scanFile(p string, explicit bool) {
	base := filepath.Base(p)
	ext := strings.ToLower(filepath.Ext(base))
	switch {
	case isDockerfileName(base):
		f, err := os.Open(p)
		if err != nil {
			ss.fail(&InputError{File: p, Err: err})
			return
		}
		defer f.Close()
		ss.scanDockerfile(f, p)
	case ext == ".yaml" || ext == ".yml" || ext == ".json":
		f, err := os.Open(p)
		if err != nil {
			ss.fail(&InputError{File: p, Err: err})
			return
		}
		defer f.Close()
		decodeStream(f, p, "", ss.addObject, ss.fail)
	case ext == ".tgz" && explicit:
		ss.scanChart(p)
	case explicit:
		ss.fail(&InputError{File: p, Err: fmt.Errorf("unrecognised file type: expected .yaml, .yml, .json, a Dockerfile or a chart (.tgz or a directory)")})
	}
}
