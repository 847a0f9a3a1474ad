package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/tmkms-nitro/tmkms-nitro/internal/cli"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"tmkms-nitro-helper": func() {
			os.Exit(cli.Main(context.Background(), os.Args[1:], &cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}))
		},
	})
}

// TestScript runs the command-line scripts in testdata/*.txt. $VECTORS is
// testdata itself, $ENCLAVE the enclave program built from this tree.
func TestScript(t *testing.T) {
	vectors, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	enclave := filepath.Join(t.TempDir(), "tmkms-nitro-enclave")
	build := exec.Command("go", "build", "-o", enclave, "../tmkms-nitro-enclave")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the enclave: %v\n%s", err, out)
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Setup: func(e *testscript.Env) error {
			e.Setenv("VECTORS", vectors)
			e.Setenv("ENCLAVE", enclave)
			// Never reach for the EC2 metadata service from a test.
			e.Setenv("AWS_EC2_METADATA_DISABLED", "true")
			return nil
		},
	})
}
