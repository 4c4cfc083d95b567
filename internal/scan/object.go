package scan

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Object is one decoded Kubernetes object with where it came from. Raw is
// the generic decoded form every rule reads; node keeps the YAML tree only
// while the object is being checked, so that findings can point at the line
// of the offending field.
type Object struct {
	APIVersion  string
	Kind        string
	Name        string
	Namespace   string
	Labels      map[string]string
	Annotations map[string]string
	Raw         map[string]any

	File   string
	Line   int    // line of the object's first key
	Origin string // "", "helm:<chart>", "kustomize:<dir>"

	node       *yaml.Node // mapping node of the object, nil once released
	lineOffset int        // added to node lines (document start in the file)
}

// Group returns the API group ("" for the core group).
func (o *Object) Group() string {
	if i := strings.IndexByte(o.APIVersion, '/'); i >= 0 {
		return o.APIVersion[:i]
	}
	return ""
}

// GroupKind is "group/Kind", or "Kind" for the core group.
func (o *Object) GroupKind() string {
	if g := o.Group(); g != "" {
		return g + "/" + o.Kind
	}
	return o.Kind
}

// ns returns the namespace with the empty one read as "default", which is
// where an un-namespaced manifest lands.
func (o *Object) ns() string {
	if o.Namespace == "" {
		return "default"
	}
	return o.Namespace
}

// lineOf returns the line of the deepest node found along path (map keys as
// strings, list indices as ints), or the object's line.
func (o *Object) lineOf(p ...any) int {
	n := o.node
	if n == nil {
		return o.Line
	}
	line := n.Line
	for _, seg := range p {
		var next *yaml.Node
		switch s := seg.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				break
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == s {
					next = n.Content[i+1]
					line = n.Content[i].Line
					break
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && s >= 0 && s < len(n.Content) {
				next = n.Content[s]
				line = next.Line
			}
		}
		if next == nil {
			break
		}
		n = next
	}
	return line + o.lineOffset
}

// lineOfPath is lineOf for a dotted path such as "spec.template.spec"
// whose numeric segments are list indices.
func (o *Object) lineOfPath(dotted string, more ...any) int {
	var p []any
	if dotted != "" {
		for _, s := range strings.Split(dotted, ".") {
			if i, err := strconv.Atoi(s); err == nil {
				p = append(p, i)
			} else {
				p = append(p, s)
			}
		}
	}
	return o.lineOf(append(p, more...)...)
}

func (o *Object) finding(r *Rule, line int, msg string) Finding {
	return Finding{
		RuleID: r.ID, Severity: r.Severity, Title: r.Title, Message: msg,
		Remediation: r.Remediation, References: r.References,
		File: o.File, Line: line, Origin: o.Origin,
		Kind: o.Kind, Namespace: o.Namespace, Name: o.Name,
	}
}

// Generic accessors over the decoded form. They tolerate any shape: input
// is untrusted and a wrong type is simply "absent".

func getMap(m map[string]any, keys ...string) map[string]any {
	cur := m
	for _, k := range keys {
		next, ok := cur[k].(map[string]any)
		if !ok {
			return nil
		}
		cur = next
	}
	return cur
}

func getSlice(m map[string]any, keys ...string) []any {
	if len(keys) == 0 {
		return nil
	}
	parent := getMap(m, keys[:len(keys)-1]...)
	if parent == nil {
		return nil
	}
	s, _ := parent[keys[len(keys)-1]].([]any)
	return s
}

func getString(m map[string]any, keys ...string) string {
	if len(keys) == 0 {
		return ""
	}
	parent := getMap(m, keys[:len(keys)-1]...)
	if parent == nil {
		return ""
	}
	return scalarString(parent[keys[len(keys)-1]])
}

func scalarString(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case bool:
		return strconv.FormatBool(t)
	case int:
		return strconv.Itoa(t)
	case int64:
		return strconv.FormatInt(t, 10)
	case uint64:
		return strconv.FormatUint(t, 10)
	case float64:
		return strconv.FormatFloat(t, 'g', -1, 64)
	}
	return ""
}

func stringMap(m map[string]any) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = scalarString(v)
	}
	return out
}
