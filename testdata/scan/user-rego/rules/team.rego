package warden.kubernetes.acme

deny contains f if {
	input.kind == "Deployment"
	not input.metadata.labels.team
	f := {
		"id": "ACME001",
		"severity": "low",
		"title": "Deployment without a team label",
		"message": sprintf("Deployment %s has no team label", [input.metadata.name]),
		"path": ["metadata"],
	}
}
