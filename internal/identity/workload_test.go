package identity

import (
	"context"
	"crypto/tls"
	"errors"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/identity/devca"
)

// fakeWorkloadAPI is a real SPIFFE Workload API server (the gRPC service of
// go-spiffe's proto/spiffe/workload) whose answers the test sets. Streams
// send the current answer and then every update.
type fakeWorkloadAPI struct {
	workload.UnimplementedSpiffeWorkloadAPIServer

	mu      sync.Mutex
	x509    *workload.X509SVIDResponse
	jwt     *workload.JWTBundlesResponse
	changed chan struct{}
}

func startWorkloadAPI(t testing.TB) (*fakeWorkloadAPI, string) {
	t.Helper()
	f := &fakeWorkloadAPI{changed: make(chan struct{})}
	path := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	workload.RegisterSpiffeWorkloadAPIServer(srv, f)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return f, "unix://" + path
}

func (f *fakeWorkloadAPI) set(x *workload.X509SVIDResponse, j *workload.JWTBundlesResponse) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if x != nil {
		f.x509 = x
	}
	if j != nil {
		f.jwt = j
	}
	close(f.changed)
	f.changed = make(chan struct{})
}

// checkHeader enforces the security header every Workload API client must
// send (SPIFFE Workload Endpoint spec, section 6.2).
func checkHeader(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("workload.spiffe.io"); len(v) != 1 || v[0] != "true" {
		return status.Error(codes.InvalidArgument, "security header missing")
	}
	return nil
}

func (f *fakeWorkloadAPI) FetchX509SVID(_ *workload.X509SVIDRequest, stream workload.SpiffeWorkloadAPI_FetchX509SVIDServer) error {
	if err := checkHeader(stream.Context()); err != nil {
		return err
	}
	for {
		f.mu.Lock()
		resp, ch := f.x509, f.changed
		f.mu.Unlock()
		if resp != nil {
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
		select {
		case <-ch:
		case <-stream.Context().Done():
			return nil
		}
	}
}

func (f *fakeWorkloadAPI) FetchJWTBundles(_ *workload.JWTBundlesRequest, stream workload.SpiffeWorkloadAPI_FetchJWTBundlesServer) error {
	if err := checkHeader(stream.Context()); err != nil {
		return err
	}
	for {
		f.mu.Lock()
		resp, ch := f.jwt, f.changed
		f.mu.Unlock()
		if resp != nil {
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
		select {
		case <-ch:
		case <-stream.Context().Done():
			return nil
		}
	}
}

func x509Response(t testing.TB, svid *x509svid.SVID, own *devca.CA, federated ...*devca.CA) *workload.X509SVIDResponse {
	t.Helper()
	certs, key, err := svid.MarshalRaw()
	if err != nil {
		t.Fatal(err)
	}
	resp := &workload.X509SVIDResponse{
		Svids:            []*workload.X509SVID{{SpiffeId: svid.ID.String(), X509Svid: certs, X509SvidKey: key, Bundle: own.Certificate().Raw}},
		FederatedBundles: map[string][]byte{},
	}
	for _, ca := range federated {
		resp.FederatedBundles[ca.TrustDomain().IDString()] = ca.Certificate().Raw
	}
	return resp
}

func jwtResponse(t testing.TB, cas ...*devca.CA) *workload.JWTBundlesResponse {
	t.Helper()
	resp := &workload.JWTBundlesResponse{Bundles: map[string][]byte{}}
	for _, ca := range cas {
		b, err := ca.JWTBundle().Marshal()
		if err != nil {
			t.Fatal(err)
		}
		resp.Bundles[ca.TrustDomain().IDString()] = b
	}
	return resp
}

func TestWorkloadAPISource(t *testing.T) {
	ca, partner, stranger := newCA(t, tdWarden), newCA(t, tdPartner), newCA(t, spiffeid.RequireTrustDomainFromString("stranger.test"))
	api, socket := startWorkloadAPI(t)
	first := issue(t, ca, wardenID, devca.X509Options{})
	api.set(x509Response(t, first, ca, partner, stranger), jwtResponse(t, ca, partner, stranger))

	src := newSource(t, config.Identity{
		TrustDomain: tdWarden.Name(),
		Source:      "workload_api",
		WorkloadAPI: &config.WorkloadAPI{Socket: socket, StartTimeout: 5 * time.Second},
		// partner.test is named, its bundle comes from the agent;
		// stranger.test is pushed by the agent but never named.
		Federation: []config.FederatedBundle{{TrustDomain: tdPartner.Name()}},
	})

	svid, err := src.GetX509SVID()
	if err != nil || svid.ID != wardenID {
		t.Fatalf("SVID %v, %v", svid, err)
	}
	if b, err := src.GetX509BundleForTrustDomain(tdPartner); err != nil || !b.HasX509Authority(partner.Certificate()) {
		t.Fatalf("federated bundle from the agent: %v", err)
	}
	if _, err := src.GetX509BundleForTrustDomain(stranger.TrustDomain()); !errors.Is(err, ErrTrustDomainNotAccepted) {
		t.Fatalf("unconfigured trust domain's X.509 bundle returned: %v", err)
	}
	if _, err := src.GetJWTBundleForTrustDomain(stranger.TrustDomain()); !errors.Is(err, ErrTrustDomainNotAccepted) {
		t.Fatalf("unconfigured trust domain's JWT bundle returned: %v", err)
	}

	// JWT bundles from the Workload API verify JWT-SVIDs.
	v := NewJWTVerifier(src, []string{"warden"}, []spiffeid.TrustDomain{tdWarden, tdPartner})
	for _, c := range []*devca.CA{ca, partner} {
		id := spiffeid.RequireFromPath(c.TrustDomain(), "/agent")
		if p, err := v.Verify(mint(t, c, id, []string{"warden"}, devca.JWTOptions{})); err != nil || p.ID != id {
			t.Fatalf("JWT-SVID of %s: %v", id, err)
		}
	}

	// A TLS listener on this source serves the SVID the agent pushes,
	// without a restart.
	srv := serveRaw(t, ServerTLSConfig(src, ServerOptions{TrustDomains: []spiffeid.TrustDomain{tdWarden}, RequireClientCert: true}))
	agent := issue(t, ca, agentID, devca.X509Options{})
	served := func() *big.Int {
		var got *big.Int
		c := agentTLS(agent, ca.X509Bundle())
		c.VerifyConnection = func(cs tls.ConnectionState) error { got = cs.PeerCertificates[0].SerialNumber; return nil }
		res, err := srv.dial(t, c)
		if err != nil || res.err != nil || res.peer.ID != agentID {
			t.Fatalf("handshake: %v %v %v", err, res.err, res.peer.ID)
		}
		return got
	}
	if served().Cmp(first.Certificates[0].SerialNumber) != 0 {
		t.Fatal("not serving the agent's SVID")
	}
	second := issue(t, ca, wardenID, devca.X509Options{})
	api.set(x509Response(t, second, ca, partner), nil)
	eventually(t, "pushed rotation", func() bool {
		return served().Cmp(second.Certificates[0].SerialNumber) == 0
	})

	// The agent now hands out only a foreign SVID: Warden has none rather
	// than impersonating someone else.
	api.set(x509Response(t, issue(t, stranger, spiffeid.RequireFromPath(stranger.TrustDomain(), "/w"), devca.X509Options{}), stranger), nil)
	eventually(t, "foreign SVID refused", func() bool {
		_, err := src.GetX509SVID()
		return err != nil
	})
}

func TestWorkloadAPIStartTimeout(t *testing.T) {
	api, socket := startWorkloadAPI(t)
	_ = api // never answers: no SVID set
	start := time.Now()
	_, err := NewSource(context.Background(), config.Identity{
		TrustDomain: tdWarden.Name(),
		Source:      "workload_api",
		WorkloadAPI: &config.WorkloadAPI{Socket: socket, StartTimeout: 200 * time.Millisecond},
	}, "", testLog(t))
	if err == nil || !strings.Contains(err.Error(), "no X.509-SVID") {
		t.Fatalf("want a start timeout error, got %v after %v", err, time.Since(start))
	}
}
