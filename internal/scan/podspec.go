package scan

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// podTarget is one pod spec found in an object: a Deployment has one, a
// RayCluster one per group.
type podTarget struct {
	Path string // dotted path of the PodSpec, indices numeric ("spec.workerGroupSpecs.0.template.spec")
	Meta *metav1.ObjectMeta
	Spec *corev1.PodSpec
}

type podPaths struct {
	templates, specs []string
}

func newPodPathIndex(extra []PodSpecPath) map[string]podPaths {
	idx := map[string]podPaths{}
	for _, list := range [][]PodSpecPath{builtinPodSpecPaths, extra} {
		for _, p := range list {
			k := p.Kind
			if p.Group != "" {
				k = p.Group + "/" + p.Kind
			}
			e := idx[k]
			e.templates = append(e.templates, p.Templates...)
			e.specs = append(e.specs, p.Specs...)
			idx[k] = e
		}
	}
	return idx
}

// expand resolves a dotted path with "*" wildcards against raw and calls fn
// with every map found and its concrete dotted path.
func expand(raw any, segs []string, prefix string, fn func(string, map[string]any)) {
	if len(segs) == 0 {
		if m, ok := raw.(map[string]any); ok {
			fn(prefix, m)
		}
		return
	}
	join := func(s string) string {
		if prefix == "" {
			return s
		}
		return prefix + "." + s
	}
	seg := segs[0]
	switch v := raw.(type) {
	case map[string]any:
		if seg == "*" {
			for _, k := range sortedKeys(v) {
				expand(v[k], segs[1:], join(k), fn)
			}
			return
		}
		if next, ok := v[seg]; ok {
			expand(next, segs[1:], join(seg), fn)
		}
	case []any:
		if seg == "*" {
			for i, e := range v {
				expand(e, segs[1:], join(strconv.Itoa(i)), fn)
			}
		}
	}
}

// extractPods returns every pod spec in o; decode errors name the path.
func extractPods(o *Object, idx map[string]podPaths) ([]podTarget, error) {
	pp, ok := idx[o.GroupKind()]
	if !ok {
		return nil, nil
	}
	var out []podTarget
	var errs []string
	add := func(path string, metaRaw, specRaw map[string]any) {
		spec, err := decodePodSpec(specRaw)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", path, err))
			return
		}
		meta := &metav1.ObjectMeta{Namespace: o.Namespace, Name: o.Name}
		if metaRaw != nil {
			meta.Labels = stringMap(getMap(metaRaw, "labels"))
			meta.Annotations = stringMap(getMap(metaRaw, "annotations"))
		}
		out = append(out, podTarget{Path: path, Meta: meta, Spec: spec})
	}
	for _, t := range pp.templates {
		expand(o.Raw, strings.Split(t, "."), "", func(p string, m map[string]any) {
			spec := getMap(m, "spec")
			if spec == nil {
				return
			}
			add(p+".spec", getMap(m, "metadata"), spec)
		})
	}
	for _, s := range pp.specs {
		expand(o.Raw, strings.Split(s, "."), "", func(p string, m map[string]any) {
			meta := getMap(o.Raw, "metadata")
			add(p, meta, m)
		})
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("pod spec: %s", strings.Join(errs, "; "))
	}
	return out, nil
}

// decodePodSpec converts the generic form into the typed PodSpec the PSS
// library needs. KServe's "model" block is an inline container, so it is
// appended as one.
func decodePodSpec(m map[string]any) (*corev1.PodSpec, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var spec corev1.PodSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, err
	}
	// The API server defaults a volume without a source to emptyDir; do the
	// same so that verdicts match what the cluster would admit.
	for i := range spec.Volumes {
		if spec.Volumes[i].VolumeSource == (corev1.VolumeSource{}) {
			spec.Volumes[i].EmptyDir = &corev1.EmptyDirVolumeSource{}
		}
	}
	if model := getMap(m, "model"); model != nil {
		mb, err := json.Marshal(model)
		if err == nil {
			var c corev1.Container
			if json.Unmarshal(mb, &c) == nil {
				if c.Name == "" {
					c.Name = "kserve-container"
				}
				spec.Containers = append(spec.Containers, c)
			}
		}
	}
	return &spec, nil
}

// containerRef is a container with its location inside the pod spec.
type containerRef struct {
	C    *corev1.Container
	Init bool
	Path string // dotted path of the container
}

func allContainers(t *podTarget) []containerRef {
	var out []containerRef
	for i := range t.Spec.InitContainers {
		out = append(out, containerRef{C: &t.Spec.InitContainers[i], Init: true, Path: t.Path + ".initContainers." + strconv.Itoa(i)})
	}
	for i := range t.Spec.Containers {
		out = append(out, containerRef{C: &t.Spec.Containers[i], Path: t.Path + ".containers." + strconv.Itoa(i)})
	}
	for i := range t.Spec.EphemeralContainers {
		c := corev1.Container(t.Spec.EphemeralContainers[i].EphemeralContainerCommon)
		out = append(out, containerRef{C: &c, Path: t.Path + ".ephemeralContainers." + strconv.Itoa(i)})
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
