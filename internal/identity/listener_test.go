package identity

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardenhq/warden/internal/config"
)

func TestListenerOptions(t *testing.T) {
	id := config.Identity{TrustDomain: "warden.test", Federation: []config.FederatedBundle{{TrustDomain: "partner.test"}}}
	tests := []struct {
		name    string
		l       config.Listener
		want    ServerOptions
		wantErr []string
	}{
		{"defaults", config.Listener{Name: "a"},
			ServerOptions{TrustDomains: []spiffeid.TrustDomain{tdWarden}, RequireClientCert: true, MinVersion: tls.VersionTLS13}, nil},
		{"jwt and federated, TLS 1.2", config.Listener{Name: "b", Auth: []string{"mtls", "jwt"}, JWTAudiences: []string{"warden"}, TrustDomains: []string{"warden.test", "partner.test"}, MinTLSVersion: "1.2"},
			ServerOptions{TrustDomains: []spiffeid.TrustDomain{tdWarden, tdPartner}, RequireClientCert: false, MinVersion: tls.VersionTLS12}, nil},
		{"everything wrong", config.Listener{Name: "c", Auth: []string{"basic", "jwt"}, TrustDomains: []string{"stranger.test", "Bad Name"}, MinTLSVersion: "1.1"},
			ServerOptions{}, []string{"stranger.test", "Bad Name", `auth "basic"`, "jwt_audiences", "min_tls_version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ListenerOptions(id, tt.l)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("accepted: %+v", got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b spiffeid.TrustDomain) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
	if !AcceptsJWT(config.Listener{Auth: []string{"jwt"}}) || AcceptsJWT(config.Listener{}) {
		t.Error("AcceptsJWT")
	}
}
