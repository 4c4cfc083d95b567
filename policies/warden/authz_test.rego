# The test package lives outside data.warden: the tests replace
# data.warden.bindings and data.warden.roles with their fixtures.
package test.warden.authz

import data.warden.authz

# example mirrors policies/roles.example.yaml (the Go tests load the file
# itself); td is its trust domain.
example := {
	"bindings": {
		"spiffe://example.org/agent/support": ["support-reader"],
		"spiffe://example.org/pipeline/training": ["full-access"],
	},
	"roles": {
		"support-reader": {"permissions": [
			{"backend": "llm", "actions": ["invoke"]},
			{"backend": "kb", "actions": ["read"]},
		]},
		"full-access": {"permissions": [{"backend": "*", "actions": ["*"]}]},
	},
}

call(id, backend, action) := {
	"subject": subject(id),
	"resource": {"kind": "http", "backend": backend},
	"action": action,
	"operation": "",
}

subject(id) := {"spiffe_id": id, "trust_domain": td, "path": p} if {
	rest := trim_prefix(id, "spiffe://")
	i := indexof(rest, "/")
	td := substring(rest, 0, i)
	p := substring(rest, i, -1)
}

decide(inp, d) := x if {
	x := authz.decision with input as inp with data.warden.bindings as d.bindings with data.warden.roles as d.roles
}

test_support_may_invoke_llm if {
	d := decide(call("spiffe://example.org/agent/support", "llm", "invoke"), example)
	d.allow
	d.reasons == ["allowed_by_role:support-reader"]
	d.obligations == {}
}

test_support_may_read_kb if {
	decide(call("spiffe://example.org/agent/support", "kb", "read"), example).allow
}

test_support_may_not_write_kb if {
	d := decide(call("spiffe://example.org/agent/support", "kb", "write"), example)
	not d.allow
	d.reasons == ["no_matching_role"]
}

test_support_may_not_read_llm_admin if {
	not decide(call("spiffe://example.org/agent/support", "llm", "admin"), example).allow
}

test_training_has_full_access if {
	every backend in ["llm", "kb", "mcp"] {
		every action in ["read", "write", "invoke", "admin"] {
			decide(call("spiffe://example.org/pipeline/training", backend, action), example).allow
		}
	}
}

test_star_excludes_protocol_specific_actions if {
	d := decide(call("spiffe://example.org/pipeline/training", "mcp", "connect_external"), example)
	not d.allow
	d.reasons == ["no_matching_role"]
}

test_unknown_identity_denied if {
	d := decide(call("spiffe://example.org/agent/other", "llm", "invoke"), example)
	not d.allow
	d.reasons == ["no_binding_for_identity"]
}

test_other_trust_domain_denied if {
	not decide(call("spiffe://evil.org/agent/support", "llm", "invoke"), example).allow
}

test_exact_binding_is_not_a_prefix if {
	not decide(call("spiffe://example.org/agent/support/child", "llm", "invoke"), example).allow
}

test_missing_subject_denied if {
	d := authz.decision with input as {"resource": {"backend": "llm"}, "action": "invoke"} with data.warden.bindings as example.bindings with data.warden.roles as example.roles
	not d.allow
	d.reasons == ["no_binding_for_identity"]
}

test_no_data_denies_everything if {
	d := authz.decision with input as call("spiffe://example.org/pipeline/training", "llm", "invoke") with data.warden.bindings as {} with data.warden.roles as {}
	not d.allow
}

patterns := {
	"bindings": {
		"spiffe://example.org/team/*": ["team"],
		"spiffe://example.org/*": ["everyone"],
		"spiffe://other.org/*": ["other"],
	},
	"roles": {
		"team": {"permissions": [{"backend": "llm", "actions": ["invoke"]}]},
		"everyone": {"permissions": [{"backend": "kb", "actions": ["read"]}]},
		"other": {"permissions": [{"backend": "*", "actions": ["*"]}]},
	},
}

test_path_prefix_binding if {
	d := decide(call("spiffe://example.org/team/a/b", "llm", "invoke"), patterns)
	d.allow
	d.reasons == ["allowed_by_role:team"]
}

test_path_prefix_needs_a_further_segment if {
	not decide(call("spiffe://example.org/team", "llm", "invoke"), patterns).allow
}

test_path_prefix_on_segment_boundary if {
	not decide(call("spiffe://example.org/teamster/x", "llm", "invoke"), patterns).allow
}

test_trust_domain_binding if {
	decide(call("spiffe://example.org/anything", "kb", "read"), patterns).allow
	not decide(call("spiffe://example.org/anything", "llm", "invoke"), patterns).allow
}

test_roles_are_a_union if {
	authz.roles == {"team", "everyone"} with input as call("spiffe://example.org/team/x", "kb", "read")
		with data.warden.bindings as patterns.bindings with data.warden.roles as patterns.roles
}

test_trust_domains_are_separate if {
	authz.roles == {"other"} with input as call("spiffe://other.org/team/x", "kb", "read")
		with data.warden.bindings as patterns.bindings with data.warden.roles as patterns.roles
}

fine := {
	"bindings": {"spiffe://example.org/agent/a": ["chat", "tools", "tenant-a", "tenant-b"]},
	"roles": {
		"chat": {"permissions": [{
			"backend": "llm",
			"actions": ["invoke"],
			"operations": ["chat.completions"],
			"resources": {"model": ["gpt-4o-mini", "claude-*"]},
			"obligations": {"max_tokens": 1024},
		}]},
		"tools": {"permissions": [
			{"backend": "mcp", "actions": ["invoke"], "operations": ["tools/call"], "resources": {"tool": ["search_*"]}},
			{"backend": "mcp", "actions": ["connect_external"]},
		]},
		"tenant-a": {"permissions": [{"backend": "kb", "actions": ["read"], "resources": {"collection": ["a-*"]}, "obligations": {"tenant": "a"}}]},
		"tenant-b": {"permissions": [{"backend": "kb", "actions": ["read"], "resources": {"collection": ["ab*"]}, "obligations": {"tenant": "b"}}]},
	},
}

fcall(resource, action, operation) := {
	"subject": subject("spiffe://example.org/agent/a"),
	"resource": resource,
	"action": action,
	"operation": operation,
}

test_model_allowed_with_obligations if {
	d := decide(fcall({"backend": "llm", "model": "claude-3-haiku"}, "invoke", "chat.completions"), fine)
	d.allow
	d.obligations == {"max_tokens": 1024}
}

test_model_not_listed_denied if {
	not decide(fcall({"backend": "llm", "model": "gpt-4o"}, "invoke", "chat.completions"), fine).allow
}

test_missing_constrained_field_denied if {
	not decide(fcall({"backend": "llm"}, "invoke", "chat.completions"), fine).allow
}

test_operation_must_match if {
	not decide(fcall({"backend": "llm", "model": "gpt-4o-mini"}, "invoke", "embeddings"), fine).allow
}

test_tool_glob if {
	decide(fcall({"backend": "mcp", "tool": "search_docs"}, "invoke", "tools/call"), fine).allow
	not decide(fcall({"backend": "mcp", "tool": "delete_docs"}, "invoke", "tools/call"), fine).allow
}

test_protocol_specific_action_listed if {
	decide(fcall({"backend": "mcp"}, "connect_external", "initialize"), fine).allow
}

test_array_resource_values_must_all_match if {
	decide(fcall({"backend": "kb", "collection": ["a-1", "a-2"]}, "read", "points.search"), fine).allow
	not decide(fcall({"backend": "kb", "collection": ["a-1", "x"]}, "read", "points.search"), fine).allow
	not decide(fcall({"backend": "kb", "collection": []}, "read", "points.search"), fine).allow
	not decide(fcall({"backend": "kb", "collection": 7}, "read", "points.search"), fine).allow
}

test_obligation_conflict_denies if {
	# "ab-1" matches tenant-b only; "a-b" matches tenant-a only; "ab*" and
	# "a-*" overlap nowhere, so build an overlap explicitly.
	d := decide(fcall({"backend": "kb", "collection": "a-1"}, "read", "points.search"), fine)
	d.allow
	d.obligations == {"tenant": "a"}
	overlap := json.patch(fine, [{"op": "replace", "path": "/roles/tenant-b/permissions/0/resources/collection", "value": ["a-*"]}])
	c := decide(fcall({"backend": "kb", "collection": "a-1"}, "read", "points.search"), overlap)
	not c.allow
	c.reasons == ["obligation_conflict:tenant"]
}

test_reasons_name_every_allowing_role if {
	both := json.patch(fine, [{"op": "replace", "path": "/roles/tenant-b/permissions/0/obligations", "value": {"tenant": "a"}}, {"op": "replace", "path": "/roles/tenant-b/permissions/0/resources/collection", "value": ["a-*"]}])
	d := decide(fcall({"backend": "kb", "collection": "a-1"}, "read", "points.search"), both)
	d.allow
	d.reasons == ["allowed_by_role:tenant-a", "allowed_by_role:tenant-b"]
}

test_example_data_is_valid if {
	count(authz.data_errors) == 0 with data.warden.bindings as example.bindings with data.warden.roles as example.roles
	count(authz.data_errors) == 0 with data.warden.bindings as patterns.bindings with data.warden.roles as patterns.roles
	count(authz.data_errors) == 0 with data.warden.bindings as fine.bindings with data.warden.roles as fine.roles
}

test_data_errors if {
	bad := {
		"bindings": {
			"spiffe://example.org/a": ["nope"],
			"not-an-id": ["r"],
			"spiffe://example.org/b": "r",
		},
		"roles": {"r": {"permissions": [
			{"backend": "llm"},
			{"backend": "kb", "actions": [], "operations": [], "resources": {"model": "x", "tool": ["a*b"]}, "obligations": 1, "extra": true},
		]}},
	}
	errs := authz.data_errors with data.warden.bindings as bad.bindings with data.warden.roles as bad.roles
	expected := {
		`bindings: key not-an-id: want a SPIFFE ID or spiffe://<trust domain>[/<path>]/*`,
		`bindings[spiffe://example.org/b]: want a list of role names`,
		`bindings[spiffe://example.org/a]: role "nope" is not defined in roles`,
		`roles[r].permissions[0]: actions: want a non-empty list of actions`,
		`roles[r].permissions[1]: actions: want a non-empty list of actions`,
		`roles[r].permissions[1]: operations: want a non-empty list of operations (omit it for any)`,
		`roles[r].permissions[1]: resources.model: want a non-empty list of patterns`,
		`roles[r].permissions[1]: resources.tool: a*b: "*" is only allowed at the end`,
		`roles[r].permissions[1]: obligations: want an object`,
		`roles[r].permissions[1]: unknown key "extra"`,
	}
	errs == expected
}

# Guard rule (guards.rego): a blocked guard verdict denies when tools are in
# play, third-party text flows in, or an injection is near certain; a
# blocked secret in a plain chat turn is allowed (and audited).
guarded(inp, g) := object.union(inp, {"guards": g})

guard_verdict(by, ctxs, pi) := {
	"blocked": true, "over_budget": false, "blocked_by": by, "blocked_contexts": ctxs,
	"categories": {"prompt_injection": {"count": 1, "max_score": pi, "rules": ["pi.override"]}},
}

support_chat(tools) := x if {
	c := call("spiffe://example.org/agent/support", "llm", "invoke")
	x := object.union(c, {"operation": "chat.completions", "resource": {"kind": "openai", "backend": "llm", "tools": tools}})
}

test_guard_blocks_injection_toward_tools if {
	d := decide(guarded(support_chat(["get_weather"]), guard_verdict(["prompt_injection"], ["user"], 0.8)), example)
	not d.allow
	d.reasons == ["guard_blocked:prompt_injection"]
}

test_guard_blocks_injected_tool_result if {
	d := decide(guarded(support_chat([]), guard_verdict(["prompt_injection"], ["tool_output"], 0.7)), example)
	not d.allow
	d.reasons == ["guard_blocked:prompt_injection"]
}

test_guard_blocks_certain_injection_without_tools if {
	not decide(guarded(support_chat([]), guard_verdict(["prompt_injection"], ["user"], 0.95)), example).allow
}

test_guard_blocks_mcp_tool_call if {
	c := object.union(call("spiffe://example.org/pipeline/training", "tools", "invoke"), {"operation": "tools/call"})
	d := decide(guarded(c, guard_verdict(["secret"], ["user"], 0)), example)
	d.reasons == ["guard_blocked:secret"]
}

test_guard_allows_user_turn_without_tools if {
	d := decide(guarded(support_chat([]), guard_verdict(["secret"], ["user"], 0)), example)
	d.allow
	d.reasons == ["allowed_by_role:support-reader"]
}

test_guard_clean_verdict_allows if {
	g := {"blocked": false, "over_budget": false, "blocked_by": [], "blocked_contexts": [], "categories": {}}
	decide(guarded(support_chat(["get_weather"]), g), example).allow
}

test_guard_does_not_grant if {
	# A guard verdict never turns a missing role into an allow or changes its reason.
	d := decide(guarded(call("spiffe://example.org/agent/support", "kb", "write"), guard_verdict(["prompt_injection"], ["tool_output"], 1)), example)
	d.reasons == ["no_matching_role"]
}

secret_verdict(blocked) := {
	"blocked": blocked, "over_budget": false, "blocked_by": [b | blocked; b := "secret"], "blocked_contexts": [c | blocked; c := "user"],
	"categories": {"secret": {"count": 1, "max_score": 1, "rules": ["secret.aws-access-token"]}},
}

test_guard_redacts_secret_in_prompt_toward_tools if {
	# A secret in a prompt to a tool-using model is redacted, not refused.
	d := decide(guarded(support_chat(["get_weather"]), secret_verdict(true)), example)
	d.allow
	d.obligations.redact_prompt == ["secret"]
}

test_guard_redacts_secret_under_threshold if {
	d := decide(guarded(support_chat([]), secret_verdict(false)), example)
	d.allow
	d.obligations.redact_prompt == ["secret"]
}

test_guard_secret_with_injection_still_blocks if {
	v := object.union(guard_verdict(["prompt_injection", "secret"], ["user"], 0.8), {"categories": {
		"prompt_injection": {"count": 1, "max_score": 0.8, "rules": ["pi.override"]},
		"secret": {"count": 1, "max_score": 1, "rules": ["secret.aws-access-token"]},
	}})
	d := decide(guarded(support_chat(["get_weather"]), v), example)
	not d.allow
	d.reasons == ["guard_blocked:prompt_injection"]
}

test_guard_no_redaction_without_secret if {
	g := {"blocked": false, "over_budget": false, "blocked_by": [], "blocked_contexts": [], "categories": {}}
	d := decide(guarded(support_chat([]), g), example)
	not "redact_prompt" in object.keys(d.obligations)
}

role_redacting(cats) := object.union(example, {"roles": object.union(example.roles, {"support-reader": {"permissions": [{"backend": "llm", "actions": ["invoke"], "obligations": {"redact_prompt": cats}}]}})})

test_guard_role_redact_prompt_merged if {
	# A role's own redact_prompt is merged with the guard's, never replaces it.
	decide(guarded(support_chat([]), secret_verdict(false)), role_redacting(["secret", "pii"])).obligations.redact_prompt == ["pii", "secret"]
	decide(guarded(support_chat(["get_weather"]), secret_verdict(true)), role_redacting(["pii"])).obligations.redact_prompt == ["pii", "secret"]
}

test_guard_role_redact_prompt_without_secret if {
	g := {"blocked": false, "over_budget": false, "blocked_by": [], "blocked_contexts": [], "categories": {}}
	decide(guarded(support_chat([]), g), role_redacting(["pii"])).obligations.redact_prompt == ["pii"]
}
