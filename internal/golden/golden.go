// Package golden compares a test's output with a file kept in testdata, so
// that a change of output is a reviewed change of that file.
package golden

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// Check fails t unless got equals the file at path, after first writing got
// there when update is set (a test's -update flag). It returns the file's
// content.
func Check(t testing.TB, path string, got []byte, update bool) []byte {
	t.Helper()
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs; run go test -update if intended\ngot:\n%s\nwant:\n%s", path, got, want)
	}
	return want
}
