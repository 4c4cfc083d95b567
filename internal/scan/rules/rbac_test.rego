package warden.kubernetes.rbac_test

import data.warden.kubernetes.rbac

role(rules) := {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}, "rules": rules}

ids(obj) := {f.id | some f in rbac.deny with input as obj}

test_wildcard if "K8S010" in ids(role([{"apiGroups": ["apps"], "resources": ["*"], "verbs": ["get"]}]))

test_narrow_role_passes if count(ids(role([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]))) == 0

test_cluster_admin_binding if {
	b := {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "b"},
		"roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}, "subjects": []}
	"K8S011" in ids(b)
}

test_secret_read if "K8S012" in ids(role([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["watch"]}]))

test_named_secret_read_passes if not "K8S012" in ids(role([{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["one"], "verbs": ["get"]}]))

test_exec if "K8S013" in ids(role([{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}]))

test_impersonate if "K8S014" in ids(role([{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"]}]))

test_non_rbac_kind_ignored if count(ids({"apiVersion": "v1", "kind": "ConfigMap", "rules": [{"verbs": ["*"]}]})) == 0
