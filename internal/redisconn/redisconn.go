// Package redisconn builds the go-redis client Warden's Redis-backed stores
// (limits, revocations) share the settings of, from config.Redis.
package redisconn

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wardenhq/warden/internal/config"
)

// NewClient returns a client whose every call is bounded by the caller's
// context (ContextTimeoutEnabled) and cfg.Timeout (default 50ms).
func NewClient(cfg config.Redis) (*redis.Client, error) {
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 50 * time.Millisecond
	}
	opts := &redis.Options{
		Addr:                  cfg.Address,
		Username:              cfg.Username,
		DB:                    cfg.DB,
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		ContextTimeoutEnabled: true,
		// One retry covers a pooled connection Redis closed; more would
		// only stretch an outage past the caller's deadline.
		MaxRetries: 1,
		// Dial once: a refused connection fails fast and the caller's
		// breaker (limiter) or resync loop (revoke) retries later.
		DialerRetries: 1,
	}
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("redis password file: %w", err)
		}
		opts.Password = strings.TrimSpace(string(b))
	}
	if cfg.TLS {
		host, _, err := net.SplitHostPort(cfg.Address)
		if err != nil {
			return nil, fmt.Errorf("redis address %q: %w", cfg.Address, err)
		}
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	}
	return redis.NewClient(opts), nil
}
