// Package policy is Warden's embedded OPA engine: it loads Rego modules and
// data (the default library in policies/ when none are configured), rejects
// a version that fails to compile, has bad data or fails its own Rego tests,
// prepares the decision query once per version and evaluates it per request
// with a deadline. Every failure denies.
//
// The input document and the decision are documented in docs/policy.md and
// docs/policy-input.schema.json; the tests validate sample inputs against
// that schema so the documentation cannot drift from the code.
package policy
