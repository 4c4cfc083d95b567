package qdrant

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// qdrantClientDir is the pinned @qdrant/js-client-rest 1.19.0 install
// (testdata/npm at the repository root, installed by npm ci).
var qdrantClientDir = filepath.Join("..", "..", "..", "testdata", "npm", "node_modules", "@qdrant", "js-client-rest")

func needNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(qdrantClientDir, "dist", "esm", "index.js"))
	}
	if err != nil {
		msg := "node or testdata/npm/node_modules/@qdrant/js-client-rest missing (run npm ci in testdata/npm): " + err.Error()
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return node
}

type jsStep struct {
	OK      bool     `json:"ok"`
	Status  int      `json:"status"`
	IDs     []string `json:"ids"`
	Tenants []string `json:"tenants"`
	Names   []string `json:"names"`
	Error   string   `json:"error"`
	Count   *int     `json:"count"`
}

// TestJSClient drives Warden with the official Qdrant JS REST client, in
// front of the qdranttest stand-in (not a real Qdrant), as a tenant-bound
// caller: reads see only the caller's tenant, refusals surface as the
// client's ordinary API errors with Warden's message, writes are confined.
func TestJSClient(t *testing.T) {
	node := needNode(t)
	h := newHarness(t, Options{})
	abs, _ := filepath.Abs(qdrantClientDir)
	cmd := exec.Command(node, filepath.Join("testdata", "node", "jsclient.mjs"))
	cmd.Env = append(os.Environ(), "WARDEN_URL="+h.srv.URL, "WARDEN_PEER="+peerAcme, "QDRANT_CLIENT_DIR="+abs)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("node: %v\n%s\n%s", err, out, stderr)
	}
	t.Logf("client: %s", out)
	var res map[string]jsStep
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("client output: %v: %s", err, out)
	}
	ok := func(name string, wantIDs ...string) {
		t.Helper()
		s := res[name]
		if !s.OK {
			t.Errorf("%s failed: %+v", name, s)
			return
		}
		for _, tn := range s.Tenants {
			if tn != `"tenant_id":"acme"` {
				t.Errorf("%s: saw %s", name, tn)
			}
		}
		if wantIDs != nil {
			got := slices.Clone(s.IDs)
			slices.Sort(got)
			if !slices.Equal(got, wantIDs) {
				t.Errorf("%s: ids %v, want %v", name, s.IDs, wantIDs)
			}
		}
	}
	refused := func(name string, status int) {
		t.Helper()
		s := res[name]
		if s.OK || s.Status != status || s.Error == "" {
			t.Errorf("%s: %+v, want refusal %d with a Qdrant-format message", name, s, status)
		}
	}
	if got := res["collections"].Names; !slices.Equal(got, []string{"docs-eng", "kb"}) {
		t.Errorf("collections: %+v", res["collections"])
	}
	ok("query", "1", "2")
	ok("queryFiltered", "1")
	ok("queryPrefetch", "1", "2")
	ok("queryBatch", "1", "2")
	refused("queryById", 403)
	ok("scroll", "1", "2")
	ok("count")
	if c := res["count"].Count; c == nil || *c != 2 {
		t.Errorf("count: %+v, want 2", res["count"])
	}
	ok("retrieve", "1")
	ok("upsert")
	refused("upsertForeign", 403)
	refused("overrideTenant", 403)
	ok("setPayloadOther")
	ok("deleteOther")
	ok("afterWrites", "1", "2", "20")
	refused("deleteCollection", 403)
	for _, p := range h.up.Points("kb") {
		if idString(p.ID) == "3" && (p.Payload["topic"] != "billing" || p.Payload["tenant_id"] != "globex") {
			t.Errorf("globex point changed: %v", p.Payload)
		}
		if idString(p.ID) == "20" && p.Payload["tenant_id"] != "acme" {
			t.Errorf("upserted point without tenant: %v", p.Payload)
		}
	}
	if !slices.ContainsFunc(h.up.Points("kb"), func(p qdranttestPoint) bool { return idString(p.ID) == "3" }) {
		t.Error("globex point deleted")
	}
}
