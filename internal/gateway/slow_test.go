package gateway

import (
	"crypto/tls"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// TestSlowClientsTimeOut: a client that dribbles its headers or its body is
// cut off after the configured read timeouts (1s here) instead of holding a
// connection and a goroutine open; nothing reaches the upstream.
func TestSlowClientsTimeOut(t *testing.T) {
	e := newTestEnv(t, envOpts{})
	svid, err := x509svid.Load(e.dev.SVIDDir("writer")+"/svid.pem", e.dev.SVIDDir("writer")+"/svid_key.pem")
	if err != nil {
		t.Fatal(err)
	}
	tc := e.dev.ClientTLS(svid, wardenID)
	tc.NextProtos = []string{"http/1.1"}
	for name, partial := range map[string]string{
		"headers": "POST /x HTTP/1.1\r\nHost: warden\r\nContent-Type: app",
		"body":    "POST /x HTTP/1.1\r\nHost: warden\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":",
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", e.g.Addr("data"), tc)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, partial); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			b, err := io.ReadAll(conn) // returns when the server closes
			took := time.Since(start)
			if err != nil && !strings.Contains(err.Error(), "reset") {
				t.Fatalf("server did not close the slow connection within 10s: %v", err)
			}
			if took > 8*time.Second {
				t.Fatalf("slow client held the connection for %v", took)
			}
			if strings.Contains(string(b), "200 OK") {
				t.Fatalf("a truncated request was served: %q", b)
			}
		})
	}
	if e.upstream.count() != 0 {
		t.Fatal("a slow, incomplete request reached the upstream")
	}
}
