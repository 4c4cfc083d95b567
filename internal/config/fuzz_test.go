package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no config input panics the loader, and that a config
// that loads also validates again after a second ApplyDefaults (idempotence).
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("identity: {trust_domain: a.b}\nlisteners: [{name: x, address: ':1'}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		c.ApplyDefaults()
		if err := c.Validate(); err != nil {
			t.Fatalf("valid config invalid after second defaults pass: %v", err)
		}
	})
}
