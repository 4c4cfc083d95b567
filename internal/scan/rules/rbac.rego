# Built-in RBAC rules. Each deny entry is an object with id, severity,
# title, message, remediation, references and path (the field that is at
# fault, for the line number).
package warden.kubernetes.rbac

is_role if input.kind in {"Role", "ClusterRole"}

is_binding if input.kind in {"RoleBinding", "ClusterRoleBinding"}

rbac_api if startswith(input.apiVersion, "rbac.authorization.k8s.io/")

name := object.get(input, ["metadata", "name"], "")

deny contains f if {
	rbac_api
	is_role
	some i, r in input.rules
	fields := [fld | some fld in ["apiGroups", "resources", "verbs"]; "*" in object.get(r, fld, [])]
	count(fields) > 0
	f := {
		"id": "K8S010",
		"severity": "high",
		"title": "RBAC rule uses a wildcard",
		"message": sprintf("%s %q rule %d grants \"*\" in %s", [input.kind, name, i, concat(", ", fields)]),
		"remediation": "List the API groups, resources and verbs the subject needs instead of \"*\".",
		"references": ["CIS 5.1.3"],
		"path": ["rules", i],
	}
}

deny contains f if {
	rbac_api
	is_binding
	input.roleRef.kind == "ClusterRole"
	input.roleRef.name == "cluster-admin"
	f := {
		"id": "K8S011",
		"severity": "critical",
		"title": "Binding to cluster-admin",
		"message": sprintf("%s %q binds %d subject(s) to cluster-admin", [input.kind, name, count(object.get(input, "subjects", []))]),
		"remediation": "Bind a Role with only the permissions the subject needs; cluster-admin is for break-glass humans.",
		"references": ["CIS 5.1.1"],
		"path": ["roleRef"],
	}
}

reads_secrets(r) if {
	some res in r.resources
	res in {"secrets", "*"}
	some v in r.verbs
	v in {"get", "list", "watch", "*"}
	object.get(r, "resourceNames", []) == []
}

deny contains f if {
	rbac_api
	is_role
	some i, r in input.rules
	reads_secrets(r)
	"*" in object.get(r, "apiGroups", [""]) # a wildcard group also covers core
	f := secrets_finding(i)
}

deny contains f if {
	rbac_api
	is_role
	some i, r in input.rules
	reads_secrets(r)
	"" in object.get(r, "apiGroups", [])
	f := secrets_finding(i)
}

secrets_finding(i) := {
	"id": "K8S012",
	"severity": "high",
	"title": "RBAC grants read access to Secrets",
	"message": sprintf("%s %q rule %d can get/list/watch all Secrets", [input.kind, name, i]),
	"remediation": "Restrict with resourceNames to the Secrets the subject needs, or mount them instead of reading them through the API.",
	"references": ["CIS 5.1.2"],
	"path": ["rules", i],
}

deny contains f if {
	rbac_api
	is_role
	some i, r in input.rules
	some res in r.resources
	res in {"pods/exec", "pods/attach", "pods/*"}
	some v in r.verbs
	v in {"create", "get", "*"}
	f := {
		"id": "K8S013",
		"severity": "high",
		"title": "RBAC grants pods/exec or pods/attach",
		"message": sprintf("%s %q rule %d allows %s on %s", [input.kind, name, i, v, res]),
		"remediation": "Grant exec only to break-glass roles; it runs arbitrary commands in any pod the role can see.",
		"references": ["https://kubernetes.io/docs/concepts/security/rbac-good-practices/"],
		"path": ["rules", i],
	}
}

deny contains f if {
	rbac_api
	is_role
	some i, r in input.rules
	verbs := [v | some v in r.verbs; v in {"escalate", "bind", "impersonate"}]
	count(verbs) > 0
	f := {
		"id": "K8S014",
		"severity": "high",
		"title": "RBAC grants escalate, bind or impersonate",
		"message": sprintf("%s %q rule %d grants %s", [input.kind, name, i, concat(", ", verbs)]),
		"remediation": "Remove escalate/bind/impersonate; they let the subject give itself any permission.",
		"references": ["CIS 5.1.8"],
		"path": ["rules", i],
	}
}
