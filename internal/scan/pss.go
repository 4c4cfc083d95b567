package scan

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// pssCheck is one check of the official library resolved for the
// configured version.
type pssCheck struct {
	id    policy.CheckID
	level psaapi.Level
	fn    policy.CheckPodFn
}

// pssEvaluator runs the official Pod Security Standards checks one by one
// so that each failure carries its check id (the library's Evaluator
// returns results without ids). It resolves versions and overrides exactly
// as the library's registry does; TestPSSAgreesWithLibrary verifies that
// against policy.NewEvaluator on the module's own fixtures.
type pssEvaluator struct {
	lv     psaapi.LevelVersion
	checks []pssCheck
}

func newPSSEvaluator(lv psaapi.LevelVersion) (*pssEvaluator, error) {
	all := policy.DefaultChecks()
	// Validate the check set with the library itself and learn the newest
	// version it knows, to clamp lv.Version like EvaluatePod does.
	if _, err := policy.NewEvaluator(all, nil); err != nil {
		return nil, fmt.Errorf("pss: %w", err)
	}
	maxV := psaapi.MajorMinorVersion(1, 0)
	for _, c := range all {
		if v := c.Versions[len(c.Versions)-1].MinimumVersion; maxV.Older(v) {
			maxV = v
		}
	}
	if lv.Version.Latest() || maxV.Older(lv.Version) {
		lv.Version = maxV
	}
	e := &pssEvaluator{lv: lv}
	if lv.Level == psaapi.LevelPrivileged {
		return e, nil
	}
	overridden := map[policy.CheckID]bool{}
	if lv.Level == psaapi.LevelRestricted {
		for _, c := range all {
			if c.Level != psaapi.LevelRestricted {
				continue
			}
			if vc := pickVersion(c, lv.Version); vc != nil {
				for _, id := range vc.OverrideCheckIDs {
					overridden[id] = true
				}
			}
		}
	}
	for _, c := range all {
		if lv.Level == psaapi.LevelBaseline && c.Level != psaapi.LevelBaseline {
			continue
		}
		if overridden[c.ID] {
			continue
		}
		if vc := pickVersion(c, lv.Version); vc != nil {
			e.checks = append(e.checks, pssCheck{id: c.ID, level: c.Level, fn: vc.CheckPod})
		}
	}
	return e, nil
}

// pickVersion returns the newest VersionedCheck whose MinimumVersion is not
// newer than v, or nil when the check did not exist yet at v.
func pickVersion(c policy.Check, v psaapi.Version) *policy.VersionedCheck {
	var chosen *policy.VersionedCheck
	for i := range c.Versions {
		if !v.Older(c.Versions[i].MinimumVersion) {
			chosen = &c.Versions[i]
		}
	}
	return chosen
}

// pssFailure is one failed check.
type pssFailure struct {
	ID     policy.CheckID
	Level  psaapi.Level
	Reason string
	Detail string
}

func (e *pssEvaluator) evaluate(meta *metav1.ObjectMeta, spec *corev1.PodSpec) []pssFailure {
	var out []pssFailure
	for _, c := range e.checks {
		r := c.fn(meta, spec)
		if !r.Allowed {
			out = append(out, pssFailure{ID: c.id, Level: c.level, Reason: r.ForbiddenReason, Detail: r.ForbiddenDetail})
		}
	}
	return out
}

// pssRuleID is the stable rule id of a PSS check: "PSS-" + the library's
// check id, e.g. PSS-runAsNonRoot.
func pssRuleID(id policy.CheckID) string { return "PSS-" + string(id) }

// pssCIS maps PSS checks to the CIS Kubernetes Benchmark controls that ask
// for the same thing.
var pssCIS = map[policy.CheckID]string{
	"privileged":                "CIS 5.2.2",
	"hostNamespaces":            "CIS 5.2.3, 5.2.4, 5.2.5",
	"allowPrivilegeEscalation":  "CIS 5.2.6",
	"runAsNonRoot":              "CIS 5.2.7",
	"runAsUser":                 "CIS 5.2.7",
	"capabilities_baseline":     "CIS 5.2.9",
	"capabilities_restricted":   "CIS 5.2.8, 5.2.10",
	"windowsHostProcess":        "CIS 5.2.11",
	"hostPathVolumes":           "CIS 5.2.12",
	"restrictedVolumes":         "CIS 5.2.12",
	"hostPorts":                 "CIS 5.2.13",
	"seccompProfile_baseline":   "CIS 5.7.2",
	"seccompProfile_restricted": "CIS 5.7.2",
}

func (e *pssEvaluator) findings(o *Object, t *podTarget) []Finding {
	fails := e.evaluate(t.Meta, t.Spec)
	if len(fails) == 0 {
		return nil
	}
	out := make([]Finding, 0, len(fails))
	for _, f := range fails {
		sev := SeverityMedium
		if f.Level == psaapi.LevelBaseline {
			sev = SeverityHigh
		}
		refs := []string{
			fmt.Sprintf("PSS %s/%s (%s)", f.Level, f.ID, e.lv.Version),
			"https://kubernetes.io/docs/concepts/security/pod-security-standards/",
		}
		if c := pssCIS[f.ID]; c != "" {
			refs = append(refs, c)
		}
		msg := f.Reason
		if f.Detail != "" {
			msg += ": " + f.Detail
		}
		if where := podWhere(t.Path); where != "" {
			msg += " (" + where + ")"
		}
		out = append(out, Finding{
			RuleID: pssRuleID(f.ID), Severity: sev,
			Title:       fmt.Sprintf("Pod Security Standards (%s): %s", f.Level, f.Reason),
			Message:     msg,
			Remediation: "Change the pod spec so that it meets the " + string(e.lv.Level) + " Pod Security Standard: " + f.Reason + ".",
			References:  refs,
			File:        o.File, Line: o.lineOfPath(t.Path), Origin: o.Origin,
			Kind: o.Kind, Namespace: o.Namespace, Name: o.Name,
		})
	}
	return out
}

// podWhere names a non-obvious pod spec location (RayCluster worker groups
// and the like); empty for the usual single template.
func podWhere(p string) string {
	switch p {
	case "spec", "spec.template.spec", "template.spec", "spec.jobTemplate.spec.template.spec":
		return ""
	}
	return strings.TrimSuffix(p, ".spec")
}
