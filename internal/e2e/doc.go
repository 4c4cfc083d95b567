// Package e2e holds end-to-end tests: the real gateway with mTLS on both
// hops, real OPA, real certificates, and the official clients (openai-go,
// the openai npm client, the MCP SDKs, the Qdrant JS client) against
// upstream servers that speak the real wire protocols. It has no non-test code.
package e2e
