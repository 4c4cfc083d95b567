package config

import (
	"os"
	"path/filepath"
	"testing"
)

func filepathRead(t *testing.T, name string) (string, error) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b), nil
}
