package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadValid(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "valid.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Backends[0].TLS.Mode, "mtls"; got != want {
		t.Errorf("default tls mode = %q, want %q", got, want)
	}
	if got := c.Listeners[0].TrustDomains; len(got) != 1 || got[0] != "warden.test" {
		t.Errorf("listener trust domains default = %v", got)
	}
	if c.Policy.Timeout != 100*time.Millisecond || !*c.Policy.TestOnLoad {
		t.Errorf("policy defaults not applied: %+v", c.Policy)
	}
	if got, want := c.Resolve("roles.yaml"), filepath.Join("testdata", "roles.yaml"); got != want {
		t.Errorf("Resolve = %q, want %q", got, want)
	}
	if got, want := c.Revocation.Path, "audit/revocations.json"; got != want {
		t.Errorf("revocation path default = %q, want %q", got, want)
	}
	if c.Routes[0].Name != "llm/v1/" {
		t.Errorf("route name default = %q", c.Routes[0].Name)
	}
}

// TestLoadErrors checks that each kind of bad config names file, line and field.
func TestLoadErrors(t *testing.T) {
	base, _ := filepathRead(t, "valid.yaml")
	cases := []struct {
		name    string
		edit    func(string) string
		want    []string // substrings that must all appear
		notWant string
	}{
		{"unknown key", func(s string) string {
			return strings.Replace(s, "    address: 127.0.0.1:8443", "    address: 127.0.0.1:8443\n    adress: x", 1)
		}, []string{"w.yaml:8: field adress not found"}, ""},
		{"wrong type", func(s string) string {
			return strings.Replace(s, "mode: strict", "mode: strict\n  max_batch: lots", 1)
		}, []string{"w.yaml:25:", "cannot unmarshal", "lots"}, ""},
		{"missing url and unknown backend", func(s string) string {
			s = strings.Replace(s, "    url: https://127.0.0.1:9000\n", "", 1)
			return strings.Replace(s, "backend: llm", "backend: nope", 1)
		}, []string{"w.yaml:12: backends[0].url: required", "w.yaml:18: routes[0].backend: unknown backend \"nope\""}, ""},
		{"plaintext to remote", func(s string) string {
			s = strings.Replace(s, "https://127.0.0.1:9000", "http://10.0.0.1:9000", 1)
			return strings.Replace(s, "      spiffe_id: spiffe://warden.test/upstream/llm", "      mode: plaintext", 1)
		}, []string{"tls.allow_plaintext: must be true", "plaintext is only allowed to loopback"}, ""},
		{"bad trust domain and missing audit", func(s string) string {
			s = strings.Replace(s, "trust_domain: warden.test", "trust_domain: Warden_Test!", 1)
			return strings.Replace(s, "  path: audit/audit.jsonl\n", "", 1)
		}, []string{"w.yaml:2: identity.trust_domain: invalid trust domain", "audit.path: required"}, ""},
		{"two documents", func(s string) string { return s + "---\nfoo: 1\n" }, []string{"only one YAML document"}, ""},
		{"syntax", func(s string) string { return s + "  - [unclosed\n" }, []string{"w.yaml:"}, ""},
		{"jwt without audience", func(s string) string {
			return strings.Replace(s, "    address: 127.0.0.1:8443", "    address: 127.0.0.1:8443\n    auth: [mtls, jwt]", 1)
		}, []string{"listeners[0].jwt_audiences: required"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("w.yaml", []byte(tc.edit(base)))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\n does not contain %q", err, w)
				}
			}
		})
	}
}

func TestValidateReportsAll(t *testing.T) {
	_, err := Parse("x.yaml", []byte("identity: {}\n"))
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"identity.trust_domain", "listeners", "backends", "routes", "audit.path", "identity.files.dir"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in %v", w, err)
		}
	}
}

func TestGuardSection(t *testing.T) {
	base, _ := filepathRead(t, "valid.yaml")
	c, err := Parse("w.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if c.Guard != nil {
		t.Fatalf("guard absent from the file but set: %+v", c.Guard)
	}
	c, err = Parse("w.yaml", []byte(base+"guard:\n  thresholds:\n    tool_output: {prompt_injection: 0.5}\n"))
	if err != nil {
		t.Fatal(err)
	}
	g := c.Guard
	if g == nil || g.FailMode != "closed" || g.Timeout != 250*time.Millisecond || g.MaxBytes != 1<<20 {
		t.Fatalf("guard defaults not applied: %+v", g)
	}
	if g.Thresholds["tool_output"].PromptInjection != 0.5 {
		t.Errorf("thresholds = %+v", g.Thresholds)
	}

	bad := base + "guard:\n  fail_mode: maybe\n  disable: [secret, jokes]\n  thresholds:\n    chat: {pii: 1}\n"
	_, err = Parse("w.yaml", []byte(bad))
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"guard.fail_mode: must be closed or open", "guard.disable[1]: unknown category \"jokes\"", "guard.thresholds.chat: unknown context"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\n does not contain %q", err, w)
		}
	}
	if !strings.Contains(err.Error(), "w.yaml:") {
		t.Errorf("error does not name the line: %v", err)
	}
	_, err = Parse("w.yaml", []byte(base+"guard:\n  timeout: 2 bananas\n"))
	if err == nil || !strings.Contains(err.Error(), "w.yaml:") {
		t.Errorf("bad duration: %v", err)
	}
	// remote classifier and capture: defaults, then every problem at once.
	c, err = Parse("w.yaml", []byte(base+"guard:\n  remote: {url: \"http://127.0.0.1:9000/classify\"}\n  capture: {path: /var/lib/warden/capture.jsonl}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Guard.Remote; r.Timeout != 2*time.Second || r.FailMode != "closed" || r.MaxBytes != 32<<10 || len(r.Contexts) != 4 {
		t.Errorf("remote defaults: %+v", r)
	}
	if cp := c.Guard.Capture; cp.When != "flagged" || cp.Sample != 1 || cp.MaxBodyBytes != 64<<10 || cp.MaxFileBytes != 256<<20 {
		t.Errorf("capture defaults: %+v", cp)
	}
	if c.Guard.StreamWindow != 256 {
		t.Errorf("stream_window default: %d", c.Guard.StreamWindow)
	}
	_, err = Parse("w.yaml", []byte(base+"guard:\n  stream_window: 8\n  disable: [pii]\n  remote: {url: \"ftp://x\", fail_mode: later, contexts: [user, chat]}\n  capture: {when: all}\n"))
	for _, w := range []string{"guard.stream_window: must be between 256", "guard.capture: needs the secret and pii detectors", "guard.remote.url: want an http or https URL", "guard.remote.fail_mode: must be closed or open", "guard.remote.contexts[1]: unknown context \"chat\"", "guard.capture.path: is required", "guard.capture.sample: must be in (0, 1]"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v\n does not contain %q", err, w)
		}
	}
	_, err = Parse("w.yaml", []byte(base+"guard:\n  tresholds: {}\n"))
	if err == nil || !strings.Contains(err.Error(), "field tresholds not found") {
		t.Errorf("unknown key: %v", err)
	}
}
