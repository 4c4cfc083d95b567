package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// webPKIConfig is the upstream TLS config for tls.mode "tls": a CA file, or
// the system roots when none is given.
func webPKIConfig(caFile, serverName string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile == "" {
		return c, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca_file %s: no PEM certificates", caFile)
	}
	c.RootCAs = pool
	return c, nil
}
