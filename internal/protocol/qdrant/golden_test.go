package qdrant

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
)

var update = flag.Bool("update", false, "rewrite testdata/forward golden files")

// goldenCase is one file of testdata/requests: "METHOD TARGET", then
// "tenant: VALUE" ("-" for a caller without a tenant obligation), then the
// body.
type goldenCase struct {
	method, target, tenant string
	body                   []byte
}

func readCase(t testing.TB, data []byte) goldenCase {
	parts := bytes.SplitN(data, []byte("\n"), 3)
	if len(parts) < 2 {
		t.Fatalf("malformed case")
	}
	mt := strings.SplitN(string(parts[0]), " ", 2)
	c := goldenCase{method: mt[0], target: mt[1], tenant: strings.TrimPrefix(string(parts[1]), "tenant: ")}
	if len(parts) == 3 {
		c.body = parts[2]
	}
	return c
}

// run parses, decides (allow, with the case's tenant) and forwards; the
// result is the forwarded body or "error STATUS CODE".
func (c goldenCase) run(p *Protocol) string {
	r := httptest.NewRequest(c.method, "http://q"+c.target, bytes.NewReader(c.body))
	if len(c.body) > 0 {
		r.Header.Set("Content-Type", "application/json")
	}
	x, err := p.Parse(context.Background(), &protocol.Request{HTTP: r, Body: c.body, Backend: "q"})
	if err != nil {
		e := protocol.AsError(err)
		return fmt.Sprintf("error %d %s\n", e.Status, e.Code)
	}
	ds := make([]protocol.Decision, len(x.Calls()))
	for i := range ds {
		ds[i].Allow = true
		if c.tenant != "-" {
			ds[i].Obligations = tenantObl(c.tenant)
		}
	}
	out, err := x.Forward(context.Background(), ds)
	if err != nil {
		e := protocol.AsError(err)
		return fmt.Sprintf("error %d %s\n", e.Status, e.Code)
	}
	return string(out) + "\n"
}

// TestGolden pins the exact bytes forwarded for each request in
// testdata/requests (or the refusal), one case per file.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "requests", "*.txt"))
	if len(files) == 0 {
		t.Fatal("no golden cases")
	}
	p := New(Config{})
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".txt")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got := readCase(t, data).run(p)
			want := filepath.Join("testdata", "forward", name+".json")
			if *update {
				if err := os.WriteFile(want, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			w, err := os.ReadFile(want)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got != string(w) {
				t.Fatalf("forwarded:\n%s\nwant:\n%s", got, w)
			}
		})
	}
}

// FuzzParseForward: no input panics, and whatever a tenant-bound caller
// gets forwarded re-parses strictly and, for a filtered read, starts its
// filter with the tenant condition.
func FuzzParseForward(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "requests", "*.txt"))
	for _, file := range files {
		data, _ := os.ReadFile(file)
		c := readCase(f, data)
		f.Add(c.method, c.target, string(c.body))
	}
	p := New(Config{Default: Options{MaxBatch: 64}})
	want, _ := jsonstrict.Marshal(tenantCondFor("acme"))
	f.Fuzz(func(t *testing.T, method, target, body string) {
		if !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n#") {
			return
		}
		r, err := newRequest(method, target, body)
		if err != nil {
			return
		}
		x, err := p.Parse(context.Background(), &protocol.Request{HTTP: r, Body: []byte(body), Backend: "q"})
		if err != nil {
			return
		}
		ds := make([]protocol.Decision, len(x.Calls()))
		for i := range ds {
			ds[i] = protocol.Decision{Allow: true, Obligations: tenantObl("acme")}
		}
		out, err := x.Forward(context.Background(), ds)
		if err != nil || out == nil {
			return
		}
		v, err := jsonstrict.Parse(out, jsonstrict.Options{MaxDepth: 200})
		if err != nil {
			t.Fatalf("forwarded body does not re-parse: %v", err)
		}
		ex := x.(*exchange)
		if ex.m.r.class == classSearch && !strings.HasSuffix(ex.m.r.op, ".batch") {
			filter, _ := v.(map[string]any)["filter"].(map[string]any)
			must, _ := filter["must"].([]any)
			if len(must) == 0 {
				t.Fatalf("filtered read forwarded without tenant condition: %s", out)
			}
			got, _ := jsonstrict.Marshal(must[0])
			if !bytes.Equal(got, want) {
				t.Fatalf("first must is %s, want %s", got, want)
			}
		}
	})
}

func tenantCondFor(v string) map[string]any {
	return (&Tenant{Field: "tenant_id", Value: v}).cond()
}

func newRequest(method, target, body string) (r *http.Request, err error) {
	defer func() {
		if recover() != nil {
			err = fmt.Errorf("invalid request")
		}
	}()
	r = httptest.NewRequest(method, "http://q"+target, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r, nil
}

// FuzzCanonicalPath: an accepted path is canonical (no "//", no trailing
// "/"), canonicalization is idempotent, and it equals Qdrant's
// normalization of the fully decoded path.
func FuzzCanonicalPath(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "requests", "*.txt"))
	for _, file := range files {
		data, _ := os.ReadFile(file)
		target := readCase(f, data).target
		if i := strings.IndexByte(target, '?'); i >= 0 {
			target = target[:i]
		}
		f.Add(target)
	}
	for _, s := range []string{"/collections/k%62", "/collections//kb", "/%41%2f", "/collections/a+b", "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := canonicalPath(p)
		if err != nil {
			return
		}
		if strings.Contains(got, "//") || len(got) > 1 && strings.HasSuffix(got, "/") {
			t.Fatalf("%q → %q not canonical", p, got)
		}
		again, err := canonicalPath(got)
		if err != nil || again != got {
			t.Fatalf("%q → %q → %q, %v", p, got, again, err)
		}
		dec, derr := url.PathUnescape(p)
		if derr != nil {
			t.Fatalf("%q accepted but not decodable", p)
		}
		for strings.Contains(dec, "//") {
			dec = strings.ReplaceAll(dec, "//", "/")
		}
		if len(dec) > 1 {
			dec = strings.TrimSuffix(dec, "/")
		}
		if dec != got {
			t.Fatalf("%q: Warden %q, actix-style %q", p, got, dec)
		}
	})
}
