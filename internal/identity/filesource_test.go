package identity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/identity/devca"
)

func TestHalfWrittenRotationKeepsOldSVID(t *testing.T) {
	ca := newCA(t, tdWarden)
	dir := tempDir(t, "svid")
	first := writeWarden(t, dir, ca, nil)
	src := newSource(t, fileSourceCfg(dir))

	// Only the key of the next SVID lands: key and certificate disagree.
	next := issue(t, ca, wardenID, devca.X509Options{})
	certPEM, keyPEM, err := next.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := devca.WriteFileAtomic(filepath.Join(dir, devca.SVIDKeyFile), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	// Give the watcher several chances to (wrongly) swap.
	time.Sleep(300 * time.Millisecond)
	got, err := src.GetX509SVID()
	if err != nil || got != first && !got.Certificates[0].Equal(first.Certificates[0]) {
		t.Fatalf("half-written rotation replaced the SVID: %v", err)
	}
	if got.Certificates[0].Equal(next.Certificates[0]) {
		t.Fatal("new certificate without its key")
	}
	// A truncated certificate file is ignored too.
	if err := os.WriteFile(filepath.Join(dir, devca.SVIDFile), certPEM[:len(certPEM)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if got, _ := src.GetX509SVID(); !got.Certificates[0].Equal(first.Certificates[0]) {
		t.Fatal("truncated certificate replaced the SVID")
	}
	// The rest arrives: the new SVID takes over.
	if err := devca.WriteFileAtomic(filepath.Join(dir, devca.SVIDFile), certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "rotation", func() bool {
		got, _ := src.GetX509SVID()
		return got.Certificates[0].Equal(next.Certificates[0])
	})
}

func TestSVIDMustChainToBundleAndTrustDomain(t *testing.T) {
	ca, other := newCA(t, tdWarden), newCA(t, tdWarden)
	// SVID of one CA with the bundle of another: not a usable identity.
	dir := tempDir(t, "svid")
	writeWarden(t, dir, ca, other.X509Bundle())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := NewSource(ctx, fileSourceCfg(dir), "", testLog(t)); err == nil || !strings.Contains(err.Error(), "does not chain") {
		t.Fatalf("mismatched bundle accepted: %v", err)
	}
	// An SVID of another trust domain is not Warden's.
	evil := newCA(t, tdEvil)
	dir2 := tempDir(t, "svid2")
	if err := devca.WriteSVID(dir2, issue(t, evil, spiffeid.RequireFromPath(tdEvil, "/w"), devca.X509Options{}), evil.X509Bundle()); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if _, err := NewSource(ctx2, fileSourceCfg(dir2), "", testLog(t)); err == nil {
		t.Fatal("SVID of another trust domain accepted")
	}
}

func TestFilesAppearLateAndRelativePaths(t *testing.T) {
	ca := newCA(t, tdWarden)
	base := t.TempDir()
	cfg := fileSourceCfg("svid") // relative to base
	done := make(chan error, 1)
	var src Source
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		src, err = NewSource(ctx, cfg, base, testLog(t))
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	writeWarden(t, filepath.Join(base, "svid"), ca, nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if svid, err := src.GetX509SVID(); err != nil || svid.ID != wardenID {
		t.Fatalf("%v %v", svid, err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := src.GetX509SVID(); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestSourceConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  config.Identity
		want []string
	}{
		{"everything wrong at once", config.Identity{
			TrustDomain: "Not A Domain",
			Source:      "vault",
			Federation:  []config.FederatedBundle{{TrustDomain: ""}},
			JWTBundles:  []config.JWTBundleFile{{TrustDomain: "stranger.test", File: "x.json"}},
		}, []string{"identity.trust_domain", "identity.source", "identity.federation[0].trust_domain", "identity.jwt_bundles[0]"}},
		{"files without dir", config.Identity{TrustDomain: "warden.test"}, []string{"identity.files.dir"}},
		{"federating the own domain, twice", config.Identity{
			TrustDomain: "warden.test", Files: &config.IdentityFiles{Dir: "d"},
			Federation: []config.FederatedBundle{{TrustDomain: "warden.test", BundleFile: "a"}, {TrustDomain: "p.test", BundleFile: "a"}, {TrustDomain: "p.test", BundleFile: "b"}},
		}, []string{"own trust domain", "listed twice"}},
		{"federation without bundle file on files", config.Identity{
			TrustDomain: "warden.test", Files: &config.IdentityFiles{Dir: "d"},
			Federation: []config.FederatedBundle{{TrustDomain: "p.test"}},
		}, []string{"bundle_file is required"}},
		{"workload api without socket", config.Identity{TrustDomain: "warden.test", Source: "workload_api"}, []string{"SPIFFE_ENDPOINT_SOCKET"}},
	}
	t.Setenv("SPIFFE_ENDPOINT_SOCKET", "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSource(context.Background(), tt.cfg, "", nil)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestRotationUnderLoad rotates Warden's SVID files (and once its trust
// bundle, adding a second CA) while clients hammer a real TLS server over
// fresh and kept-alive connections. No request may fail, and clients must
// see the new certificates.
func TestRotationUnderLoad(t *testing.T) {
	ca := newCA(t, tdWarden)
	dir := tempDir(t, "svid")
	writeWarden(t, dir, ca, nil)
	src := newSource(t, fileSourceCfg(dir))
	addr := serveHTTPS(t, ServerTLSConfig(src, ServerOptions{TrustDomains: []spiffeid.TrustDomain{tdWarden}, RequireClientCert: true}))

	agent := issue(t, ca, agentID, devca.X509Options{})
	// Agents trust both the current and the next CA, as during a real CA
	// rotation where the bundle is published before the new CA signs.
	ca2 := newCA(t, tdWarden)
	agentBundle := ca.X509Bundle()
	agentBundle.AddX509Authority(ca2.Certificate())
	client := func(keepAlive bool) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig:   agentTLS(agent, agentBundle),
			DisableKeepAlives: !keepAlive,
			ForceAttemptHTTP2: keepAlive, // fresh connections speak HTTP/1.1
		}}
	}

	var (
		stop     atomic.Bool
		ok, bad  atomic.Int64
		mu       sync.Mutex
		serials  = map[string]bool{}
		protos   = map[string]bool{}
		firstErr atomic.Value
		wg       sync.WaitGroup
	)
	for i := 0; i < 4; i++ {
		c := client(i%2 == 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				resp, err := c.Get("https://" + addr + "/")
				if err != nil {
					bad.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(body) != agentID.String() {
					bad.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %s", resp.StatusCode, body))
					continue
				}
				ok.Add(1)
				mu.Lock()
				serials[resp.TLS.PeerCertificates[0].SerialNumber.String()] = true
				protos[resp.Proto] = true
				mu.Unlock()
			}
		}()
	}
	var last *big.Int
	for i := 0; i < 8; i++ {
		time.Sleep(60 * time.Millisecond)
		bundle := ca.X509Bundle()
		if i >= 4 {
			bundle.AddX509Authority(ca2.Certificate())
		}
		last = writeWarden(t, dir, ca, bundle).Certificates[0].SerialNumber
	}
	// Wait until a fresh connection sees the last SVID, then stop.
	fresh := client(false)
	eventually(t, "last SVID served", func() bool {
		resp, err := fresh.Get("https://" + addr + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.Cmp(last) == 0
	})
	stop.Store(true)
	wg.Wait()
	if n := bad.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed during rotation; first: %v", n, n+ok.Load(), firstErr.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if ok.Load() == 0 || len(serials) < 2 {
		t.Fatalf("%d requests saw %d server certificates; rotation not exercised", ok.Load(), len(serials))
	}
	if !protos["HTTP/2.0"] || !protos["HTTP/1.1"] {
		t.Errorf("want both HTTP/1.1 and h2 exercised, saw %v", protos)
	}
	t.Logf("%d requests, %d server certificates, protocols %v, 0 failures", ok.Load(), len(serials), protos)
}

func TestFederatedBundleFileRotates(t *testing.T) {
	ca, oldPartner, newPartner := newCA(t, tdWarden), newCA(t, tdPartner), newCA(t, tdPartner)
	dir := tempDir(t, "svid")
	writeWarden(t, dir, ca, nil)
	partnerFile := filepath.Join(t.TempDir(), "partner.pem")
	writeBundle := func(c *devca.CA) {
		b, err := c.X509Bundle().Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := devca.WriteFileAtomic(partnerFile, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeBundle(oldPartner)
	src := newSource(t, fileSourceCfg(dir, config.FederatedBundle{TrustDomain: tdPartner.Name(), BundleFile: partnerFile}))
	srv := serveRaw(t, ServerTLSConfig(src, ServerOptions{TrustDomains: []spiffeid.TrustDomain{tdWarden, tdPartner}, RequireClientCert: true}))
	id := spiffeid.RequireFromPath(tdPartner, "/agent")
	oldAgent, newAgent := issue(t, oldPartner, id, devca.X509Options{}), issue(t, newPartner, id, devca.X509Options{})
	accepted := func(svid *x509svid.SVID) bool {
		res, err := srv.dial(t, agentTLS(svid, ca.X509Bundle()))
		return err == nil && res.err == nil && res.peer.ID == id
	}
	if !accepted(oldAgent) || accepted(newAgent) {
		t.Fatal("before rotation: want only the old partner CA trusted")
	}
	writeBundle(newPartner)
	eventually(t, "federated bundle rotation", func() bool { return accepted(newAgent) })
	if accepted(oldAgent) {
		t.Fatal("old partner CA still trusted after its bundle was replaced")
	}
}
