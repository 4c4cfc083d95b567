package guard

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestScanInputAndReport(t *testing.T) {
	s := newTestScanner(t)
	ctx := context.Background()
	secret := "AKIAZ3MHALFQ7NWEXJOP"
	for _, tc := range []struct {
		name, in string
		failOn   string
		fail     bool
		path     string
	}{
		{"text", "key " + secret, "high", true, "$"},
		{"text below", "mail ana@example.org", "high", false, "$"},
		{"text low gate", "mail ana@example.org", "medium", true, "$"},
		{"json", `{"messages":[{"role":"user","content":"key ` + secret + `"}]}`, "critical", true, "$.messages[0].content"},
		{"none", "key " + secret, "none", false, "$"},
		{"clean", "hello", "low", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaves, err := s.ScanInput(ctx, []byte(tc.in), "")
			if err != nil {
				t.Fatal(err)
			}
			fail, err := AtOrAbove(leaves, tc.failOn)
			if err != nil || fail != tc.fail {
				t.Errorf("AtOrAbove(%s) = %v, %v; want %v", tc.failOn, fail, err, tc.fail)
			}
			var tab, js bytes.Buffer
			if err := WriteReport(&tab, leaves, false); err != nil {
				t.Fatal(err)
			}
			if err := WriteReport(&js, leaves, true); err != nil {
				t.Fatal(err)
			}
			for _, out := range []string{tab.String(), js.String()} {
				if strings.Contains(out, secret) || strings.Contains(out, "ana@") {
					t.Errorf("report prints matched text:\n%s", out)
				}
			}
			var rep report
			if err := json.Unmarshal(js.Bytes(), &rep); err != nil {
				t.Fatal(err)
			}
			if tc.path != "" && (len(rep.Findings) == 0 || rep.Findings[0].Path != tc.path) {
				t.Errorf("findings %+v, want path %s", rep.Findings, tc.path)
			}
			if tc.path == "" && !strings.Contains(tab.String(), "no findings") {
				t.Errorf("table = %q", tab.String())
			}
		})
	}
	if _, err := AtOrAbove(nil, "severe"); err == nil {
		t.Error("unknown severity accepted")
	}
	if _, err := s.ScanInput(ctx, []byte{0xff, 0xfe, 0x00}, ""); err == nil {
		t.Error("binary input accepted")
	}
}
