package warden.authz

# data_errors lists every problem with data.warden (bindings and roles).
# The engine refuses to load a policy version while this set is not empty,
# so a typo in roles.yaml cannot silently widen or narrow access.
data_errors contains msg if {
	some key, _ in data.warden.bindings
	not valid_binding_key(key)
	msg := sprintf("bindings: key %v: want a SPIFFE ID or spiffe://<trust domain>[/<path>]/*", [key])
}

data_errors contains msg if {
	some key, rs in data.warden.bindings
	not is_string_array(rs)
	msg := sprintf("bindings[%v]: want a list of role names", [key])
}

data_errors contains msg if {
	some key, rs in data.warden.bindings
	is_array(rs)
	some r in rs
	is_string(r)
	not data.warden.roles[r]
	msg := sprintf("bindings[%v]: role %q is not defined in roles", [key, r])
}

data_errors contains msg if {
	some name, role in data.warden.roles
	not is_object(role)
	msg := sprintf("roles[%v]: want an object with permissions: [...]", [name])
}

data_errors contains msg if {
	some name, role in data.warden.roles
	is_object(role)
	not is_array(object.get(role, "permissions", null))
	msg := sprintf("roles[%v]: want permissions: [...]", [name])
}

data_errors contains msg if {
	some name, role in data.warden.roles
	is_object(role)
	some k, _ in role
	not k in {"permissions", "description"}
	msg := sprintf("roles[%v]: unknown key %q", [name, k])
}

# _perms are the permissions by [role name, index].
_perms[[name, i]] := perm if {
	some name, role in data.warden.roles
	is_object(role)
	perms := object.get(role, "permissions", null)
	is_array(perms)
	some i, perm in perms
}

_perm_error(where, msg) := sprintf("roles[%v].permissions[%d]: %s", [where[0], where[1], msg])

data_errors contains _perm_error(w, "want an object") if {
	some w, perm in _perms
	not is_object(perm)
}

data_errors contains _perm_error(w, sprintf("unknown key %q", [k])) if {
	some w, perm in _perms
	is_object(perm)
	some k, _ in perm
	not k in {"backend", "actions", "operations", "resources", "obligations", "description"}
}

data_errors contains _perm_error(w, `backend: want a backend name or "*"`) if {
	some w, perm in _perms
	is_object(perm)
	not non_empty_string(object.get(perm, "backend", null))
}

data_errors contains _perm_error(w, "actions: want a non-empty list of actions") if {
	some w, perm in _perms
	is_object(perm)
	not non_empty_string_array(object.get(perm, "actions", null))
}

data_errors contains _perm_error(w, "operations: want a non-empty list of operations (omit it for any)") if {
	some w, perm in _perms
	is_object(perm)
	"operations" in object.keys(perm)
	not non_empty_string_array(perm.operations)
}

data_errors contains _perm_error(w, sprintf(`operations: %v: "*" is only allowed at the end`, [pat])) if {
	some w, perm in _perms
	is_object(perm)
	is_array(object.get(perm, "operations", null))
	some pat in perm.operations
	not valid_glob(pat)
}

data_errors contains _perm_error(w, "resources: want an object of field: [patterns]") if {
	some w, perm in _perms
	is_object(perm)
	not is_object(object.get(perm, "resources", {}))
}

data_errors contains _perm_error(w, sprintf("resources.%v: want a non-empty list of patterns", [field])) if {
	some w, perm in _perms
	is_object(perm)
	is_object(object.get(perm, "resources", {}))
	some field, pats in object.get(perm, "resources", {})
	not non_empty_string_array(pats)
}

data_errors contains _perm_error(w, sprintf(`resources.%v: %v: "*" is only allowed at the end`, [field, pat])) if {
	some w, perm in _perms
	is_object(perm)
	is_object(object.get(perm, "resources", {}))
	some field, pats in object.get(perm, "resources", {})
	is_array(pats)
	some pat in pats
	not valid_glob(pat)
}

data_errors contains _perm_error(w, "obligations: want an object") if {
	some w, perm in _perms
	is_object(perm)
	not is_object(object.get(perm, "obligations", {}))
}

non_empty_string(s) if {
	is_string(s)
	s != ""
}

valid_binding_key(key) if {
	is_string(key)
	regex.match(`^spiffe://[a-z0-9._-]+(/[A-Za-z0-9._~!$&'()+,;=:@%-]+)*(/\*)?$`, key)
}

is_string_array(a) if {
	is_array(a)
	every x in a {
		is_string(x)
	}
}

non_empty_string_array(a) if {
	is_string_array(a)
	count(a) > 0
}

valid_glob(pat) if {
	is_string(pat)
	not contains(trim_suffix(pat, "*"), "*")
}
