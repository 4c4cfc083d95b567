// Package rules embeds Warden's built-in Rego rules for `warden scan`:
// RBAC checks on Kubernetes objects (package warden.kubernetes.*) and
// Dockerfile checks (package warden.dockerfile.*). User rules in a --rules
// directory follow the same contract; see docs/scan.md.
package rules

import "embed"

// FS holds the built-in modules (*.rego) and their Rego unit tests
// (*_test.rego), which the scanner never loads.
//
//go:embed *.rego
var FS embed.FS
