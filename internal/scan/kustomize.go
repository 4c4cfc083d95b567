package scan

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

var kustomizationNames = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

func kustomizationFile(dir string) string {
	for _, n := range kustomizationNames {
		p := filepath.Join(dir, n)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

// scanKustomize builds a kustomization in-process with the Kustomize API
// and scans the result. Remote bases are refused before the build: the
// build would otherwise clone them.
func (ss *session) scanKustomize(dir string) {
	kfile := kustomizationFile(dir)
	if err := checkLocalKustomization(dir, map[string]bool{}); err != nil {
		ss.fail(&InputError{File: kfile, Err: err})
		return
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		ss.fail(&InputError{File: kfile, Err: fmt.Errorf("kustomize: build: %w", err)})
		return
	}
	origin := "kustomize:" + dir
	sources := kustomizeSources(dir)
	for _, r := range m.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			ss.fail(&InputError{File: kfile, Err: fmt.Errorf("kustomize: %s: %w", r.CurId(), err)})
			continue
		}
		// Kustomize output has no source lines: point at the file that
		// defined the resource (found by its original kind and name), or
		// at the kustomization for generated resources.
		file, line := kfile, 0
		if loc, ok := sources[r.OrgId().Kind+"/"+r.OrgId().Name]; ok {
			file, line = loc.file, loc.line
		}
		decodeStream(bytes.NewReader(b), file, origin, func(o *Object) {
			o.Line, o.lineOffset, o.node = line, 0, nil
			ss.addObject(o)
		}, ss.fail)
	}
}

// checkLocalKustomization verifies that every resource, base and component
// of the kustomization (recursively) is a local path.
func checkLocalKustomization(dir string, seen map[string]bool) error {
	abs := absPath(dir)
	if seen[abs] {
		return nil
	}
	seen[abs] = true
	kf := kustomizationFile(dir)
	if kf == "" {
		return nil
	}
	b, err := os.ReadFile(kf)
	if err != nil {
		return fmt.Errorf("kustomize: %w", err)
	}
	var k kustomization
	if err := yaml.Unmarshal(b, &k); err != nil {
		return fmt.Errorf("kustomize: %s: %w", kf, err)
	}
	for _, list := range [][]string{k.Resources, k.Bases, k.Components} {
		for _, r := range list {
			if strings.Contains(r, "://") || strings.HasPrefix(r, "git@") || strings.Contains(r, "?ref=") || strings.HasPrefix(r, "github.com/") {
				return fmt.Errorf("kustomize: %s references remote resource %q; vendor it locally (warden never downloads)", kf, r)
			}
			p := filepath.Join(dir, r)
			st, err := os.Stat(p)
			if err != nil {
				return fmt.Errorf("kustomize: %s: resource %q: %w", kf, r, err)
			}
			if st.IsDir() {
				if err := checkLocalKustomization(p, seen); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// kustomizeDeps returns the absolute paths of dir and every local
// kustomization directory it builds on.
func kustomizeDeps(dir string) []string {
	seen := map[string]bool{}
	_ = checkLocalKustomization(dir, seen)
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	return out
}

type kustomization struct {
	Resources  []string `yaml:"resources"`
	Bases      []string `yaml:"bases"`
	Components []string `yaml:"components"`
}

type srcLoc struct {
	file string
	line int
}

// kustomizeSources indexes the local resource files of dir and its bases
// by "Kind/name", to map build output back to where it was written.
func kustomizeSources(dir string) map[string]srcLoc {
	out := map[string]srcLoc{}
	for _, d := range kustomizeDeps(dir) {
		kf := kustomizationFile(d)
		b, err := os.ReadFile(kf)
		if err != nil {
			continue
		}
		var k kustomization
		if yaml.Unmarshal(b, &k) != nil {
			continue
		}
		for _, r := range k.Resources {
			p := filepath.Join(d, r)
			if st, err := os.Stat(p); err != nil || st.IsDir() {
				continue
			}
			f, err := os.Open(p)
			if err != nil {
				continue
			}
			// Name the file relative to dir as the user gave it.
			rel := p
			if rp, err := filepath.Rel(absPath(dir), p); err == nil {
				rel = filepath.Join(dir, rp)
			}
			decodeStream(f, rel, "", func(o *Object) {
				out[o.Kind+"/"+o.Name] = srcLoc{file: rel, line: o.Line}
			}, func(*InputError) {})
			f.Close()
		}
	}
	return out
}
