// Package scan checks Kubernetes manifests, Helm charts, Kustomize
// directories and Dockerfiles for security misconfigurations, with an
// emphasis on the workloads that host AI: inference servers, notebooks,
// vector databases, MCP servers and GPU pods.
//
// The Pod Security Standards are evaluated by the official
// k8s.io/pod-security-admission library; hardening, RBAC and Dockerfile
// rules are partly Go and partly embedded Rego (users add their own Rego
// with Config.RulesDir). The same Scanner backs `warden scan` and the
// `warden admission` webhook, so a manifest gets one verdict in CI and at
// admission time.
package scan

import (
	"fmt"
	"strings"
)

// Severity orders findings so that --fail-on can pick a threshold.
type Severity int

// Severities from least to most severe. The zero value is SeverityInfo so a
// rule that forgets to set one is never silently treated as critical.
const (
	SeverityInfo Severity = iota
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"info", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity accepts the lower-case names used in flags, config and Rego
// rules ("info" … "critical"), case-insensitively.
func ParseSeverity(s string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(s, n) {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q (want one of %s)", s, strings.Join(severityNames[:], ", "))
}

// MarshalText makes severities appear by name in JSON and YAML.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText is the inverse of MarshalText.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Finding is one rule violation at one place. It never carries a secret
// value: rules about literal credentials name the key only.
type Finding struct {
	RuleID      string   `json:"ruleId"`
	Severity    Severity `json:"severity"`
	Title       string   `json:"title"`
	Message     string   `json:"message"`
	Remediation string   `json:"remediation,omitempty"`
	References  []string `json:"references,omitempty"`

	// File and Line locate the finding in the input. For Helm charts File
	// is the template that produced the object and Line is the line in that
	// template's rendered output.
	File string `json:"file"`
	Line int    `json:"line,omitempty"`
	// Origin says how the object was produced: "", "helm:<chart>" or
	// "kustomize:<dir>".
	Origin string `json:"origin,omitempty"`

	// Object names the Kubernetes object ("Deployment ml/vllm"); empty for
	// Dockerfiles.
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`

	// Suppressed findings are reported but never fail the scan.
	Suppressed        bool   `json:"suppressed,omitempty"`
	SuppressedBy      string `json:"suppressedBy,omitempty"` // "config" or "annotation"
	SuppressionReason string `json:"suppressionReason,omitempty"`
}

// Object returns "Kind namespace/name" (or the file for Dockerfiles).
func (f *Finding) Object() string {
	if f.Kind == "" {
		return f.File
	}
	if f.Namespace == "" {
		return f.Kind + " " + f.Name
	}
	return f.Kind + " " + f.Namespace + "/" + f.Name
}

// Location is "file:line" as editors and CI annotations expect.
func (f *Finding) Location() string {
	if f.Line > 0 {
		return fmt.Sprintf("%s:%d", f.File, f.Line)
	}
	return f.File
}

// InputError reports input that could not be scanned (malformed YAML, an
// unknown kind, a broken template). Scanning continues with the rest of the
// input; the CLI reflects these errors in its exit code.
type InputError struct {
	File string
	Line int
	Err  error
}

func (e *InputError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *InputError) Unwrap() error { return e.Err }
