package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/tmkms-nitro/tmkms-nitro/internal/devcli"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"tmkms-nitro-dev": func() {
			os.Exit(devcli.Main(context.Background(), os.Args[1:], &devcli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}))
		},
	})
}

// TestScript runs the command-line scripts in testdata/*.txt. $ENCLAVE is
// the enclave program built from this tree.
func TestScript(t *testing.T) {
	enclave := filepath.Join(t.TempDir(), "tmkms-nitro-enclave")
	build := exec.Command("go", "build", "-o", enclave, "../tmkms-nitro-enclave")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the enclave: %v\n%s", err, out)
	}
	testscript.Run(t, testscript.Params{
		Dir:   "testdata",
		Setup: func(e *testscript.Env) error { e.Setenv("ENCLAVE", enclave); return nil },
	})
}
