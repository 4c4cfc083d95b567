package admission

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// writeCert creates a self-signed serving certificate for 127.0.0.1.
func writeCert(t testing.TB, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "warden-admission"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
}

type fixture struct {
	url    string
	client *http.Client
	srv    *Server
}

func start(t testing.TB, extra string) *fixture {
	t.Helper()
	dir := t.TempDir()
	cert, key, pool := writeCert(t, dir)
	cfgFile := filepath.Join(dir, "admission.yaml")
	cfg := "tls: {certFile: tls.crt, keyFile: tls.key}\ndefaultMode: warn\nnamespaces: {prod: enforce, logs: audit, legacy: off}\n" + extra
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	if c.TLS.CertFile != cert || c.TLS.KeyFile != key {
		t.Fatalf("relative TLS paths not resolved: %+v", c.TLS)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := NewServer(ctx, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	return &fixture{url: "https://" + ln.Addr().String() + "/validate", client: &http.Client{Transport: tr, Timeout: 10 * time.Second}, srv: s}
}

const privilegedPod = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},
 "spec":{"containers":[{"name":"c","image":"registry.example/app:1.0","securityContext":{"privileged":true}}]}}`

const hardenedPod = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"ok"},
 "spec":{"automountServiceAccountToken":false,"securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}},
  "containers":[{"name":"c","image":"registry.example/app:1.0@sha256:4c1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
   "resources":{"requests":{"cpu":"10m","memory":"16Mi"}},
   "securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}]}}`

func reviewBody(t testing.TB, ns, op, obj string) []byte {
	t.Helper()
	r := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: types.UID("uid-" + ns), Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: ns, Name: "p",
			Operation: admissionv1.Operation(op), Object: runtime.RawExtension{Raw: []byte(obj)},
		},
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fixture) send(t testing.TB, body []byte) (int, *admissionv1.AdmissionResponse) {
	t.Helper()
	resp, err := f.client.Post(f.url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil {
		t.Fatalf("bad review envelope: %+v", out)
	}
	return resp.StatusCode, out.Response
}

func TestAdmissionModes(t *testing.T) {
	f := start(t, "")
	tests := []struct {
		name, ns, op, obj string
		allowed           bool
		warnings, audit   bool
	}{
		{"enforce denies privileged", "prod", "CREATE", privilegedPod, false, true, false},
		{"enforce admits hardened", "prod", "CREATE", hardenedPod, true, false, false},
		{"warn admits with warnings", "dev", "CREATE", privilegedPod, true, true, false},
		{"audit admits with annotations", "logs", "UPDATE", privilegedPod, true, false, true},
		{"off evaluates nothing", "legacy", "CREATE", privilegedPod, true, false, false},
		{"delete is never blocked", "prod", "DELETE", privilegedPod, true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, r := f.send(t, reviewBody(t, tt.ns, tt.op, tt.obj))
			if code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			if string(r.UID) != "uid-"+tt.ns {
				t.Errorf("uid %q not echoed", r.UID)
			}
			if r.Allowed != tt.allowed {
				t.Fatalf("allowed=%v, want %v (%+v)", r.Allowed, tt.allowed, r.Result)
			}
			if !tt.allowed && (r.Result == nil || r.Result.Code != 403 || !strings.Contains(r.Result.Message, "PSS-privileged")) {
				t.Errorf("deny result should be 403 naming PSS-privileged: %+v", r.Result)
			}
			if (len(r.Warnings) > 0) != tt.warnings {
				t.Errorf("warnings=%q, want some=%v", r.Warnings, tt.warnings)
			}
			if (len(r.AuditAnnotations) > 0) != tt.audit {
				t.Errorf("audit annotations=%v, want some=%v", r.AuditAnnotations, tt.audit)
			}
		})
	}
	mfs, err := f.srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var observed uint64
	var denies float64
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "warden_admission_review_duration_seconds":
				observed += m.GetHistogram().GetSampleCount()
			case "warden_admission_reviews_total":
				for _, l := range m.GetLabel() {
					if l.GetName() == "decision" && l.GetValue() == "deny" {
						denies += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	if observed != uint64(len(tests)) {
		t.Errorf("latency histogram observed %d reviews, want %d", observed, len(tests))
	}
	if denies != 1 {
		t.Errorf("deny counter = %v, want 1", denies)
	}
}

func TestAdmissionIgnoresAnnotationsByDefault(t *testing.T) {
	annotated := strings.Replace(privilegedPod, `"metadata":{"name":"p"}`,
		`"metadata":{"name":"p","annotations":{"warden.dev/ignore":"PSS-*","warden.dev/ignore-reason":"trust me"}}`, 1)
	f := start(t, "")
	if _, r := f.send(t, reviewBody(t, "prod", "CREATE", annotated)); r.Allowed {
		t.Fatal("annotation suppressed a finding at admission without allowAnnotations")
	}
	g := start(t, "allowAnnotations: true\n")
	if _, r := g.send(t, reviewBody(t, "prod", "CREATE", annotated)); !r.Allowed {
		t.Fatalf("allowAnnotations: true did not honour the annotation: %+v", r.Result)
	}
}

func TestAdmissionRayServiceExposure(t *testing.T) {
	f := start(t, "")
	ray := `{"apiVersion":"ray.io/v1","kind":"RayCluster","metadata":{"name":"r"},"spec":{"headGroupSpec":{"serviceType":"LoadBalancer",
	  "template":{"spec":{"securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}},
	  "containers":[{"name":"head","image":"rayproject/ray:2.49.0","securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}]}}}}}`
	_, r := f.send(t, reviewBody(t, "prod", "CREATE", ray))
	if r.Allowed || !strings.Contains(r.Result.Message, "AI005") {
		t.Fatalf("exposed RayCluster without token auth admitted: %+v", r.Result)
	}
}

func TestAdmissionBadRequests(t *testing.T) {
	f := start(t, "")
	if code, _ := f.send(t, []byte("not json")); code != http.StatusBadRequest {
		t.Errorf("garbage: status %d", code)
	}
	if code, _ := f.send(t, []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`)); code != http.StatusBadRequest {
		t.Errorf("no request: status %d", code)
	}
	resp, err := f.client.Get(f.url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d", resp.StatusCode)
	}
}

func TestConfigValidation(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	_ = os.WriteFile(p, []byte("defaultMode: block\nthreshold: severe\nnamespaces: {a: maybe}\n"), 0o600)
	_, err := LoadConfig(p)
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"tls.certFile", "defaultMode", "threshold", "namespaces.a"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	_ = os.WriteFile(p, []byte("tls: {certFile: a, keyFile: b}\nunknownKey: 1\n"), 0o600)
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), "unknownKey") {
		t.Fatalf("unknown key not rejected: %v", err)
	}
}
