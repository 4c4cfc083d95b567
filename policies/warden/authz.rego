# METADATA
# title: Warden default authorization library
# description: |
#   Role-based access driven entirely by data (data.warden.bindings and
#   data.warden.roles, usually loaded from roles.yaml), so common set-ups
#   need no Rego. See docs/policy.md for the input, the data schema and the
#   decision.
#
#   Lookups are index-friendly: the caller's exact SPIFFE ID and each of its
#   path prefixes are looked up as object keys, so the cost of finding a
#   caller's roles grows with the depth of its SPIFFE path, not with the
#   number of bindings.
package warden.authz

# decision is what the gateway evaluates. It always has allow (boolean),
# reasons (stable ids) and obligations (an object). Anything not explicitly
# allowed is denied.
default decision := {"allow": false, "reasons": ["no_binding_for_identity"], "obligations": {}}

decision := {"allow": false, "reasons": ["no_binding_for_identity"], "obligations": {}} if {
	count(roles) == 0
} else := {"allow": false, "reasons": ["no_matching_role"], "obligations": {}} if {
	count(matched) == 0
} else := {"allow": false, "reasons": guard_reasons, "obligations": {}} if {
	count(guard_reasons) > 0
} else := {"allow": false, "reasons": reasons, "obligations": {}} if {
	count(obligation_conflicts) > 0
	reasons := [concat("", ["obligation_conflict:", k]) | some k in obligation_conflicts]
} else := {
	"allow": true,
	"reasons": [concat("", ["allowed_by_role:", r]) | some r in allowed_roles],
	"obligations": decision_obligations,
}

# subject_patterns are the binding keys that may match the caller: its
# exact SPIFFE ID, then "spiffe://<td>/a/b/*", ..., "spiffe://<td>/*" for
# each proper path prefix ("/*" matches one or more further segments). The
# engine supplies them as input.subject.spiffe_id_patterns, computed from
# the verified ID; they are derived here when the input lacks them (opa
# eval, hand-written inputs).
subject_patterns := input.subject.spiffe_id_patterns if {
	is_array(input.subject.spiffe_id_patterns)
} else := array.concat([input.subject.spiffe_id], [key |
	input.subject.trust_domain != ""
	parts := split(input.subject.path, "/")
	count(parts) > 1
	some i in numbers.range(count(parts) - 1, 1)
	key := concat("", ["spiffe://", input.subject.trust_domain, concat("/", array.slice(parts, 0, i)), "/*"])
]) if {
	input.subject.spiffe_id != ""
}

# roles are the caller's roles: the union over every matching binding.
roles contains role if {
	some key in subject_patterns
	some role in data.warden.bindings[key]
}

# grants are the caller's permissions by role. The engine's batch path
# (DecideMany) evaluates this once per caller and matches each item in Go
# with the same semantics as permits below.
grants[role] := object.get(data.warden.roles, [role, "permissions"], []) if some role in roles

# matched are the [role, index] pairs of the permissions that allow the call.
matched contains [role, i] if {
	some role in roles
	some i, perm in data.warden.roles[role].permissions
	permits(perm)
}

allowed_roles contains role if some [role, _] in matched

# obligations merge the obligations of every matched permission. Two
# matched permissions that set the same key to different values are a
# conflict, and a conflict denies. The common case, one matched
# permission, skips the merge.
obligations := object.get(data.warden.roles[role].permissions[i], "obligations", {}) if {
	count(matched) == 1
	some [role, i] in matched
} else := {key: value |
	some [role, i] in matched
	some key, value in object.get(data.warden.roles[role].permissions[i], "obligations", {})
	not key in obligation_conflicts
}

obligation_conflicts contains key if {
	count(matched) > 1
	some [r1, i1] in matched
	some [r2, i2] in matched
	some key, v1 in object.get(data.warden.roles[r1].permissions[i1], "obligations", {})
	v2 := data.warden.roles[r2].permissions[i2].obligations[key]
	v1 != v2
}

# permits is true when one permission covers the call.
permits(perm) if {
	backend_ok(perm.backend)
	action_ok(perm.actions)
	operation_ok(object.get(perm, "operations", null))
	resources_ok(object.get(perm, "resources", {}))
}

backend_ok("*")

backend_ok(b) if b == input.resource.backend

# coarse_actions are what "*" grants; protocol-specific actions
# ("connect_external", ...) must be listed explicitly.
coarse_actions := {"read", "write", "invoke", "admin"}

action_ok(actions) if input.action in actions

action_ok(actions) if {
	"*" in actions
	input.action in coarse_actions
}

operation_ok(null)

operation_ok(ops) if {
	some pat in ops
	glob_ok(pat, input.operation)
}

# resources_ok requires every constrained field to be present in the input
# and to match: a field the protocol did not fill in cannot be allowed.
resources_ok(res) if {
	every field, pats in res {
		value_ok(pats, input.resource[field])
	}
}

value_ok(pats, v) if {
	is_string(v)
	some pat in pats
	glob_ok(pat, v)
}

value_ok(pats, v) if {
	is_array(v)
	count(v) > 0
	every x in v {
		is_string(x)
		some pat in pats
		glob_ok(pat, x)
	}
}

# glob_ok: "*" matches anything, "prefix*" matches by prefix, anything else
# matches exactly.
glob_ok(pat, v) if pat == v

glob_ok(pat, v) if {
	endswith(pat, "*")
	startswith(v, trim_suffix(pat, "*"))
}

# Guardrails. The gateway's content detectors (docs/guardrails.md) put their
# verdict on the request in input.guards. A blocked verdict denies a call
# when the block matters most: the model can act (tools are offered or
# called), third-party text flows in (a tool result, a tool description, a
# retrieved document), or the detectors are near certain of a prompt
# injection. A blocked secret or injection phrase in a plain chat turn
# without tools is left to the audit log (input.guards is recorded with
# every decision). Without input.guards (guardrails off) nothing changes.

# guard_reasons are the reasons a call is denied for its guard verdict:
# "guard_blocked:<category>" for every category (or "over_budget") that
# blocked. Empty when the call is not guard-blocked.
guard_reasons := [concat("", ["guard_blocked:", c]) | some c in guard_blocked_by; not guard_redacted(c)] if {
	guard_applies
} else := []

# A secret in a prompt to a model is redacted rather than refused: the
# request goes on with "[REDACTED:<rule>]" in place of the value (the
# redact_prompt obligation, applied by the openai and anthropic protocols).
# Everywhere else (an MCP tool call's arguments, a document) a blocked
# secret refuses.
guard_redacted("secret") if llm_call

llm_call if input.resource.kind in {"openai", "anthropic"}

# guard_obligations are the obligations the guard verdict adds to an allow.
guard_obligations := {"redact_prompt": ["secret"]} if {
	llm_call
	input.guards.categories.secret.count > 0
} else := {}

# decision_obligations are the roles' obligations plus the guard's. A role
# that sets redact_prompt itself gets the union of its categories and the
# guard's: a role asking for ["pii"] never turns secret redaction off. (A
# malformed role value is left as it is, and the protocol refuses it.)
decision_obligations := object.union(obligations, {"redact_prompt": merged}) if {
	guard_obligations.redact_prompt
	is_array(object.get(obligations, "redact_prompt", []))
	merged := sort({c | some c in guard_obligations.redact_prompt} | {c | some c in object.get(obligations, "redact_prompt", [])})
} else := object.union(guard_obligations, obligations)

guard_blocked_by := input.guards.blocked_by if {
	count(input.guards.blocked_by) > 0
} else := ["unspecified"]

guard_applies if {
	input.guards.blocked == true
	guard_exposed
}

# guard_exposed: tools offered to the model (OpenAI/Anthropic
# resource.tools) or an MCP tool call.
guard_exposed if count(object.get(input.resource, "tools", [])) > 0

guard_exposed if input.operation == "tools/call"

# Third-party text blocked in its own (stricter) context.
guard_exposed if {
	some c in input.guards.blocked_contexts
	c in {"tool_output", "tool_description", "document"}
}

# High-confidence prompt injection anywhere.
guard_exposed if {
	"prompt_injection" in input.guards.blocked_by
	input.guards.categories.prompt_injection.max_score >= 0.9
}
