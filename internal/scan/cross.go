package scan

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// objRef is what a cross-object rule needs to report against an object
// after the object itself has been released.
type objRef struct {
	File, Origin, Kind, Namespace, Name string
	Line                                int
	Ann                                 map[string]string
}

func refOf(o *Object, line int) objRef {
	return objRef{File: o.File, Line: line, Origin: o.Origin, Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Ann: o.Annotations}
}

type workloadRec struct {
	ref          objRef
	ns           string
	sa           string
	podAutomount *bool
}

type svcRec struct {
	ns, name, typ string
	selector      labels.Selector // nil: selects nothing
	external      bool
}

type netpolRec struct {
	ns          string
	sel         labels.Selector
	ingress     bool // the policy restricts ingress
	openIngress bool // …but one of its rules admits every source
	defaultDeny bool
}

type crossIndex struct {
	workloads  []workloadRec
	cands      []aiCandidate
	services   map[string][]svcRec    // by namespace
	routed     map[string][]string    // "ns/service" → routes that reach it from outside
	netpols    map[string][]netpolRec // by namespace
	saAuto     map[string]*bool       // "ns/sa" → ServiceAccount.automountServiceAccountToken
	bound      map[string]bool        // "ns/sa" bound by some (Cluster)RoleBinding
	namespaces map[string]objRef
	nsFirst    map[string]objRef // first pod-bearing object per namespace
	nsOrder    []string
}

func newCrossIndex() crossIndex {
	return crossIndex{services: map[string][]svcRec{}, netpols: map[string][]netpolRec{}, routed: map[string][]string{}, saAuto: map[string]*bool{}, bound: map[string]bool{},
		namespaces: map[string]objRef{}, nsFirst: map[string]objRef{}}
}

func (x *crossIndex) addWorkload(o *Object, pods []podTarget, cands []aiCandidate) {
	ns := o.ns()
	if _, ok := x.nsFirst[ns]; !ok {
		x.nsFirst[ns] = refOf(o, o.Line)
		x.nsOrder = append(x.nsOrder, ns)
	}
	for _, t := range pods {
		sa := t.Spec.ServiceAccountName
		if sa == "" {
			sa = "default"
		}
		x.workloads = append(x.workloads, workloadRec{ref: refOf(o, o.lineOfPath(t.Path)), ns: ns, sa: sa, podAutomount: t.Spec.AutomountServiceAccountToken})
	}
	x.cands = append(x.cands, cands...)
}

// addObject indexes the kinds the cross-object rules read.
func (x *crossIndex) addObject(o *Object) {
	ns := o.ns()
	switch o.GroupKind() {
	case "Namespace":
		x.namespaces[o.Name] = refOf(o, o.Line)
	case "Service":
		typ := getString(o.Raw, "spec", "type")
		rec := svcRec{ns: ns, name: o.Name, typ: typ,
			external: typ == "LoadBalancer" || typ == "NodePort" || len(getSlice(o.Raw, "spec", "externalIPs")) > 0}
		if sel := stringMap(getMap(o.Raw, "spec", "selector")); len(sel) > 0 {
			rec.selector = labels.SelectorFromSet(sel)
		}
		x.services[ns] = append(x.services[ns], rec)
	case "ServiceAccount":
		if v, ok := o.Raw["automountServiceAccountToken"].(bool); ok {
			x.saAuto[ns+"/"+o.Name] = &v
		} else {
			x.saAuto[ns+"/"+o.Name] = nil
		}
	case "rbac.authorization.k8s.io/RoleBinding", "rbac.authorization.k8s.io/ClusterRoleBinding":
		for _, s := range getSlice(o.Raw, "subjects") {
			m, _ := s.(map[string]any)
			if getString(m, "kind") != "ServiceAccount" {
				continue
			}
			sns := getString(m, "namespace")
			if sns == "" {
				sns = ns
			}
			x.bound[sns+"/"+getString(m, "name")] = true
		}
	case "networking.k8s.io/Ingress":
		desc := "Ingress " + o.Name
		if n := getString(o.Raw, "spec", "defaultBackend", "service", "name"); n != "" {
			x.route(ns, n, desc)
		}
		for _, r := range getSlice(o.Raw, "spec", "rules") {
			rm, _ := r.(map[string]any)
			for _, p := range getSlice(rm, "http", "paths") {
				pm, _ := p.(map[string]any)
				if n := getString(pm, "backend", "service", "name"); n != "" {
					x.route(ns, n, desc)
				} else if n := getString(pm, "backend", "serviceName"); n != "" {
					x.route(ns, n, desc)
				}
			}
		}
	case "gateway.networking.k8s.io/HTTPRoute", "gateway.networking.k8s.io/GRPCRoute":
		desc := o.Kind + " " + o.Name
		for _, r := range getSlice(o.Raw, "spec", "rules") {
			rm, _ := r.(map[string]any)
			for _, b := range getSlice(rm, "backendRefs") {
				bm, _ := b.(map[string]any)
				if k := getString(bm, "kind"); k != "" && k != "Service" {
					continue
				}
				bns := getString(bm, "namespace")
				if bns == "" {
					bns = ns
				}
				x.route(bns, getString(bm, "name"), desc)
			}
		}
	case "networking.k8s.io/NetworkPolicy":
		x.netpols[ns] = append(x.netpols[ns], parseNetpol(o, ns))
	}
}

func (x *crossIndex) route(ns, svc, desc string) {
	k := ns + "/" + svc
	x.routed[k] = append(x.routed[k], desc)
}

func parseNetpol(o *Object, ns string) netpolRec {
	rec := netpolRec{ns: ns, sel: labels.Nothing()}
	var ls metav1.LabelSelector
	if b, err := json.Marshal(getMap(o.Raw, "spec", "podSelector")); err == nil {
		_ = json.Unmarshal(b, &ls)
	}
	if sel, err := metav1.LabelSelectorAsSelector(&ls); err == nil {
		rec.sel = sel
	}
	types := getSlice(o.Raw, "spec", "policyTypes")
	rec.ingress = len(types) == 0
	for _, t := range types {
		if t == "Ingress" {
			rec.ingress = true
		}
	}
	rules := getSlice(o.Raw, "spec", "ingress")
	for _, r := range rules {
		rm, _ := r.(map[string]any)
		if len(getSlice(rm, "from")) == 0 {
			rec.openIngress = true
		}
	}
	rec.defaultDeny = rec.ingress && len(rules) == 0 && len(ls.MatchLabels) == 0 && len(ls.MatchExpressions) == 0
	return rec
}

// protected reports whether some NetworkPolicy restricts ingress to pods
// with these labels and none of the selecting policies opens it to all.
func (x *crossIndex) protected(ns string, l map[string]string) bool {
	selected := false
	for _, p := range x.netpols[ns] {
		if !p.ingress || !p.sel.Matches(labels.Set(l)) {
			continue
		}
		if p.openIngress {
			return false
		}
		selected = true
	}
	return selected
}

// externalExposure lists Services of type LoadBalancer/NodePort and routes
// (Ingress, HTTPRoute) that reach pods with these labels.
func (x *crossIndex) externalExposure(ns string, l map[string]string) []string {
	var out []string
	for _, s := range x.services[ns] {
		if s.selector == nil || !s.selector.Matches(labels.Set(l)) {
			continue
		}
		if s.external {
			t := s.typ
			if t == "" || t == "ClusterIP" {
				t = "with externalIPs"
			} else {
				t = "type " + t
			}
			out = append(out, fmt.Sprintf("Service %s %s", s.name, t))
		}
		for _, r := range x.routed[ns+"/"+s.name] {
			out = append(out, r+" → Service "+s.name)
		}
	}
	return out
}

// crossRules runs the rules that need the whole input.
func (ss *session) crossRules() {
	x := &ss.idx
	// K8S001: namespaces with workloads but no default-deny policy.
	for _, ns := range x.nsOrder {
		deny := false
		for _, p := range x.netpols[ns] {
			if p.defaultDeny {
				deny = true
				break
			}
		}
		if deny {
			continue
		}
		ref, ok := x.namespaces[ns]
		if !ok {
			ref = x.nsFirst[ns]
		}
		ss.emitRef(ref, RuleNoDefaultDeny, fmt.Sprintf("namespace %q runs workloads but has no default-deny ingress NetworkPolicy", ns))
	}
	// K8S015: token mounted, ServiceAccount bound to nothing.
	for _, w := range x.workloads {
		if w.podAutomount != nil && !*w.podAutomount {
			continue
		}
		key := w.ns + "/" + w.sa
		if w.podAutomount == nil {
			if v := x.saAuto[key]; v != nil && !*v {
				continue
			}
		}
		if x.bound[key] {
			continue
		}
		ss.emitRef(w.ref, RuleSATokenAutomount, fmt.Sprintf("pod mounts the token of ServiceAccount %q, which no RoleBinding in the input grants anything; set automountServiceAccountToken: false", w.sa))
	}
	// AI exposure × missing authentication.
	for _, c := range x.cands {
		if c.hasAuth {
			continue
		}
		ext := append(append([]string{}, c.intrinsic...), x.externalExposure(c.ns, c.labels)...)
		internal := !x.protected(c.ns, c.labels)
		if len(ext) == 0 && !internal {
			continue
		}
		ss.reportAI(c, ext, internal)
	}
}

func (ss *session) emitRef(ref objRef, id string, msg string) {
	if !ss.s.ruleOn(id) {
		return
	}
	r := goRules[id]
	ss.add(ref.Ann, Finding{RuleID: id, Severity: r.Severity, Title: r.Title, Message: msg,
		Remediation: r.Remediation, References: r.References,
		File: ref.File, Line: ref.Line, Origin: ref.Origin, Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name})
}

// intrinsicAIRules is the admission-time variant: only exposure visible in
// the object itself (hostNetwork, hostPort, RayCluster serviceType…).
func (ss *session) intrinsicAIRules() {
	if !ss.admission {
		return
	}
	for _, c := range ss.idx.cands {
		if !c.hasAuth && len(c.intrinsic) > 0 {
			ss.reportAI(c, c.intrinsic, false)
		}
	}
}

func (ss *session) reportAI(c aiCandidate, ext []string, internal bool) {
	if !ss.s.ruleOn(c.rule) {
		return
	}
	r := goRules[c.rule]
	sev := SeverityCritical
	var where string
	if len(ext) > 0 {
		sort.Strings(ext)
		where = "exposed by " + strings.Join(ext, ", ")
	} else {
		sev = SeverityMedium
		where = "reachable from every pod in the cluster (no NetworkPolicy restricts ingress to it)"
	}
	msg := fmt.Sprintf("%s (container %q, image %s) has %s and is %s", c.product, c.container, c.image, c.authState, where)
	ss.add(c.ref.Ann, Finding{RuleID: c.rule, Severity: sev, Title: r.Title, Message: msg,
		Remediation: r.Remediation, References: r.References,
		File: c.ref.File, Line: c.ref.Line, Origin: c.ref.Origin, Kind: c.ref.Kind, Namespace: c.ref.Namespace, Name: c.ref.Name})
}
