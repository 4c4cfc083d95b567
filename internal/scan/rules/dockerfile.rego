# Built-in Dockerfile rules. input is {"stages": [...], "instructions": [...]}
# as documented in docs/scan.md. Messages name keys, never values.
package warden.dockerfile.builtin

final_stage := max({s.index | some s in input.stages})

final := [s | some s in input.stages; s.index == final_stage][0]

final_users := [ins | some ins in input.instructions; ins.cmd == "user"; ins.stage == final_stage]

stage_names := {lower(s.name) | some s in input.stages; s.name != ""}

nonroot_base if contains(final.image, "nonroot")

deny contains f if {
	count(input.stages) > 0
	count(final_users) == 0
	not nonroot_base
	not final.image in stage_names
	f := root_finding(final.line, "the final stage has no USER instruction, so the container runs as root")
}

deny contains f if {
	count(final_users) > 0
	u := final_users[count(final_users) - 1]
	user := split(u.args[0], ":")[0]
	user in {"root", "0"}
	f := root_finding(u.line, sprintf("the final stage sets USER %s", [user]))
}

root_finding(line, msg) := {
	"id": "DF001",
	"severity": "high",
	"title": "Image runs as root",
	"message": msg,
	"remediation": "Add USER with a non-zero numeric UID (e.g. USER 65532:65532) in the final stage.",
	"references": ["CIS Docker 4.1", "PSS runAsNonRoot"],
	"line": line,
}

secret_name(k) if {
	regex.match(`(?i)(passw(or)?d|secret|token|api_?key|access_?key|private_?key|credential|auth)`, k)
	not regex.match(`(?i)_(file|path|dir|url|uri|host|port|enabled|mode|type|name)$`, k)
}

deny contains f if {
	some ins in input.instructions
	ins.cmd in {"env", "arg"}
	some kv in ins.kv
	secret_name(kv.key)
	f := {
		"id": "DF002",
		"severity": "high",
		"title": "Secret in ENV or ARG",
		"message": sprintf("%s %s looks like a credential; ENV and ARG values are stored in the image history", [upper(ins.cmd), kv.key]),
		"remediation": "Use a build secret (RUN --mount=type=secret) or inject the value at run time from a Secret.",
		"references": ["CIS Docker 4.10", "https://docs.docker.com/build/building/secrets/"],
		"line": ins.line,
	}
}

remote(src) if regex.match(`^(https?|ftp)://`, src)

remote(src) if startswith(src, "git@")

has_checksum(ins) if {
	some fl in ins.flags
	startswith(fl, "--checksum")
}

deny contains f if {
	some ins in input.instructions
	ins.cmd == "add"
	count(ins.args) > 1
	some src in array.slice(ins.args, 0, count(ins.args) - 1)
	remote(src)
	not has_checksum(ins)
	f := {
		"id": "DF003",
		"severity": "medium",
		"title": "ADD of a remote URL",
		"message": sprintf("ADD fetches %s at build time without a checksum", [src]),
		"remediation": "Download with a pinned checksum (ADD --checksum=sha256:…) or COPY a vetted file from the build context.",
		"references": ["CIS Docker 4.9"],
		"line": ins.line,
	}
}

deny contains f if {
	some s in input.stages
	s.image != "scratch"
	not lower(s.image) in stage_names
	not startswith(s.image, "$")
	not contains(s.image, "@sha256:")
	f := {
		"id": "DF004",
		"severity": "medium",
		"title": "Base image not pinned by digest",
		"message": sprintf("FROM %s is not pinned by digest", [s.image]),
		"remediation": "Pin the base image: FROM image:tag@sha256:….",
		"references": ["https://docs.docker.com/build/building/best-practices/#pin-base-image-versions"],
		"line": s.line,
	}
}
