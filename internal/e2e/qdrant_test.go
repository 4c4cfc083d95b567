package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol/qdrant/qdranttest"
)

const qdrantRoles = `warden:
  bindings:
    spiffe://warden.test/agent/support: [tenant-a]
  roles:
    tenant-a:
      permissions:
        - backend: vectors
          actions: [read, write]
          resources: {collection: [docs]}
          obligations: {tenant: {field: tenant_id, value: a}}
        - {backend: vectors, actions: [read], operations: [collections.list, "service.*"]}
`

// TestQdrantJSClientThroughGateway drives the real gateway with the official
// Qdrant JS client over mTLS. The upstream is the Qdrant-compatible
// stand-in (qdranttest): no Qdrant server is installable on these machines.
func TestQdrantJSClientThroughGateway(t *testing.T) {
	qd := qdranttest.Start()
	t.Cleanup(qd.Close)
	qd.CreateCollection("docs", 4)
	qd.CreateCollection("private", 4)
	for i, tenant := range []string{"a", "b", "a", "b"} {
		qd.Put("docs", qdranttest.Point{ID: jsonstrict.Number(fmt.Sprint(i + 1)), Vector: []float64{float64(i), 1, 0, 0},
			Payload: map[string]any{"tenant_id": tenant, "text": "doc of " + tenant}})
	}
	dir := t.TempDir()
	pre := newStack(t, stackOpts{dir: dir, replica: "-pre"})
	svid, err := pre.dev.Mint("qdrant", spiffeid.RequireFromString("spiffe://warden.test/upstream/qdrant"), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	addr, err := pre.dev.Serve(svid, wardenID, qd.Handler())
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, stackOpts{dir: dir, llmURL: pre.llmURL, roles: qdrantRoles,
		backends: "  - name: vectors\n    kind: qdrant\n    url: https://" + addr + "\n    tls: {spiffe_id: \"spiffe://warden.test/upstream/qdrant\"}\n",
		routes:   "  - {path_prefix: /vectors/, backend: vectors, strip_prefix: true}\n",
	})
	_, port, _ := net.SplitHostPort(s.g.Addr("data"))
	out := runNode(t, "qdrant_client.mjs", "WARDEN_URL=https://localhost:"+port, "PREFIX=/vectors", "SVID_DIR="+s.dev.SVIDDir("support"))
	type step struct {
		OK      bool     `json:"ok"`
		Status  int      `json:"status"`
		IDs     []string `json:"ids"`
		Tenants []string `json:"tenants"`
		Names   []string `json:"names"`
		Error   string   `json:"error"`
	}
	var got map[string]step
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	if st := got["collections"]; !st.OK || strings.Join(st.Names, ",") != "docs" {
		t.Errorf("collections: %+v (want only docs)", st)
	}
	for _, name := range []string{"search", "scroll"} {
		st := got[name]
		if !st.OK || len(st.IDs) == 0 {
			t.Errorf("%s: %+v", name, st)
		}
		for _, tn := range st.Tenants {
			if tn != "a" {
				t.Errorf("%s returned a point of tenant %q", name, tn)
			}
		}
	}
	if st := got["upsert"]; !st.OK {
		t.Errorf("upsert of an own point: %+v", st)
	}
	for _, name := range []string{"upsertForeign", "escape", "deleteCollection"} {
		if st := got[name]; st.OK || st.Status < 400 || st.Status >= 500 {
			t.Errorf("%s: %+v, want a 4xx refusal", name, st)
		}
	}
	// What reached the stand-in: the own upsert, stamped with the tenant.
	for _, p := range qd.Points("docs") {
		if fmt.Sprint(p.ID) == "30" && p.Payload["tenant_id"] != "a" {
			t.Errorf("upserted point carries tenant %v, want a", p.Payload["tenant_id"])
		}
		if fmt.Sprint(p.ID) == "31" {
			t.Error("a point for another tenant was written")
		}
	}
}
