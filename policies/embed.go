// Package policies embeds Warden's default Rego library (package
// warden.authz) and an example roles file, so a gateway with no policy
// configured still runs a reviewed, tested, default-deny policy.
package policies

import "embed"

// FS holds the default library: warden/*.rego, including its Rego tests
// (*_test.rego), which the engine runs before it accepts the library.
//
//go:embed warden/*.rego
var FS embed.FS

// RolesExample is roles.example.yaml: a starting point for a roles data
// file (quickstart writes it out). It is never loaded implicitly.
//
//go:embed roles.example.yaml
var RolesExample []byte
