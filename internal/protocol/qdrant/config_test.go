package qdrant

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/protocol"
)

func TestFromConfig(t *testing.T) {
	c := &config.Config{Backends: []config.Backend{
		{Name: "kb", Kind: "qdrant", Options: map[string]any{"tenant_field": "org", "tenant_missing": "refuse", "max_batch": 10,
			"aliases": map[string]any{"kb-latest": "kb"}}},
		{Name: "plain", Kind: "qdrant"},
		{Name: "llm", Kind: "openai", Options: map[string]any{"whatever": 1}},
	}}
	p, err := FromConfig(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o := p.options("kb"); o.TenantField != "org" || o.TenantMissing != TenantMissingRefuse || o.MaxBatch != 10 || o.MaxResponseBytes != DefaultMaxResponseBytes || o.Aliases["kb-latest"] != "kb" {
		t.Fatalf("kb options %+v", o)
	}
	if o := p.options("plain"); o.TenantMissing != TenantMissingSet || o.MaxBatch != DefaultMaxBatch {
		t.Fatalf("plain options %+v", o)
	}
	if p.Name() != "qdrant" {
		t.Fatal(p.Name())
	}
	c.Backends = append(c.Backends, config.Backend{Name: "bad", Kind: "qdrant",
		Options: map[string]any{"tenant_missing": "maybe", "max_batch": 0, "tenant_field": "", "colour": "red", "aliases": map[string]any{"a/b": "kb"}}})
	_, err = FromConfig(c, nil)
	if err == nil {
		t.Fatal("bad options accepted")
	}
	for _, want := range []string{`"bad"`, "tenant_missing", "max_batch", "tenant_field", `"colour"`, "aliases"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

// TestListWithoutAuthorizer: with no response-path authorizer nothing is
// listed (fail closed).
func TestListWithoutAuthorizer(t *testing.T) {
	p := New(Config{})
	x, err := parse(t, p, "GET", "/collections", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.Forward(context.Background(), []protocol.Decision{{Allow: true}}); err != nil {
		t.Fatal(err)
	}
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(`{"result":{"collections":[{"name":"kb"},{"name":"secret"}]},"status":"ok","time":0}`))}
	if err := x.Response(context.Background(), resp, &protocol.ResponseEnv{}); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(b), "kb") || strings.Contains(string(b), "secret") || x.Audit()["hidden"] != 2 {
		t.Fatalf("listed without authorizer: %s %v", b, x.Audit())
	}
	// An encoded response cannot be checked.
	x, _ = parse(t, p, "GET", "/collections", "")
	_, _ = x.Forward(context.Background(), []protocol.Decision{{Allow: true}})
	resp = &http.Response{StatusCode: 200, Header: http.Header{"Content-Encoding": {"gzip"}}, Body: io.NopCloser(strings.NewReader("x"))}
	if err := x.Response(context.Background(), resp, &protocol.ResponseEnv{}); protocol.AsError(err).Status != 502 {
		t.Fatalf("gzip response: %v", err)
	}
}

// TestWriteErrorFormat pins Qdrant's error body.
func TestWriteErrorFormat(t *testing.T) {
	w := &recorder{h: http.Header{}}
	WriteError(w, protocol.Errorf(403, CodeTenantConflict, "request denied: x"))
	if w.status != 403 || w.body.String() != `{"status":{"error":"request denied: x"},"time":0}` || w.h.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s %v", w.status, w.body.String(), w.h)
	}
}

type recorder struct {
	h      http.Header
	status int
	body   strings.Builder
}

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) WriteHeader(s int)           { r.status = s }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
