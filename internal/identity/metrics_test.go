package identity

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/identity/devca"
)

func TestMetricsCountRefusals(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	s := newSetup(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		TLSConfig: ServerTLSConfig(s.src, ServerOptions{TrustDomains: []spiffeid.TrustDomain{tdWarden}, RequireClientCert: true}),
		ErrorLog:  m.ErrorLog(testLog(t)),
		Handler:   http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
	}
	go srv.ServeTLS(ln, "", "")
	defer srv.Close()

	get := func(svidCA *devca.CA, id spiffeid.ID, opts devca.X509Options) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: agentTLS(issue(t, svidCA, id, opts), s.bundles)}}
		if resp, err := c.Get("https://" + ln.Addr().String() + "/"); err == nil {
			resp.Body.Close()
			t.Fatalf("%s accepted", id)
		}
	}
	get(newCA(t, tdWarden), agentID, devca.X509Options{})
	get(s.ca, agentID, devca.X509Options{NotBefore: time.Now().Add(-2 * time.Hour)})
	// partner.test is federated in the source but not on this listener.
	get(s.partner, spiffeid.RequireFromPath(tdPartner, "/a"), devca.X509Options{})

	counter := func(reason string) float64 {
		return value(t, m.handshake.WithLabelValues(reason))
	}
	eventually(t, "handshake failures counted", func() bool {
		return counter("untrusted_authority") == 2 && counter("expired") == 1
	})

	v := NewJWTVerifier(s.src, []string{"warden"}, []spiffeid.TrustDomain{tdWarden}).WithMetrics(m)
	v.Verify("garbage")
	if got := value(t, m.jwt.WithLabelValues("malformed")); got != 1 {
		t.Fatalf("jwt malformed = %v", got)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Fatal("double registration not reported")
	}
}

func TestWorkloadAPISocketFromEnvironment(t *testing.T) {
	ca := newCA(t, tdWarden)
	api, socket := startWorkloadAPI(t)
	api.set(x509Response(t, issue(t, ca, wardenID, devca.X509Options{}), ca), jwtResponse(t, ca))
	t.Setenv("SPIFFE_ENDPOINT_SOCKET", socket)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src, err := NewSource(ctx, config.Identity{TrustDomain: tdWarden.Name(), Source: "workload_api"}, "", testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if svid, err := src.GetX509SVID(); err != nil || svid.ID != wardenID {
		t.Fatalf("%v %v", svid, err)
	}
}

func value(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
