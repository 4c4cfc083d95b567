// Package guardtest gives tests the real detectors as protocols see them:
// guard.New with the default configuration behind guard.ForProtocols, built
// once per test binary (loading gitleaks' rules takes about 140 ms of CPU).
// No fake: tests of the response path must meet the scanner the gateway
// lends them.
package guardtest

import (
	"sync"
	"testing"

	"github.com/wardenhq/warden/internal/guard"
	"github.com/wardenhq/warden/internal/protocol"
)

// AWSKey is an AWS access key id of the real shape (not a live key) that
// the default rules find as AWSRule and redact to AWSRedacted.
const (
	AWSKey      = "AKIAZ3MKQWERTY7N5X2P"
	AWSRule     = "secret.aws-access-token"
	AWSRedacted = "[REDACTED:" + AWSRule + "]"
)

var shared = sync.OnceValues(func() (protocol.Guard, error) {
	s, err := guard.New(guard.Config{})
	if err != nil {
		return nil, err
	}
	return guard.ForProtocols(s), nil
})

// Guard returns the shared default guard; it fails tb if the rules cannot
// be loaded.
func Guard(tb testing.TB) protocol.Guard {
	tb.Helper()
	g, err := shared()
	if err != nil {
		tb.Fatal(err)
	}
	return g
}
