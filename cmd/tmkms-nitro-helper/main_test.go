package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/tmkms-nitro/tmkms-nitro/internal/cli"
	"github.com/tmkms-nitro/tmkms-nitro/internal/testprog"
)

func TestMain(m *testing.M) {
	testprog.Main(m, "tmkms-nitro-helper", func() int {
		return cli.Main(context.Background(), os.Args[1:], &cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
	})
}

// TestScript runs the command-line scripts in testdata/*.txt. $VECTORS is
// testdata itself, $ENCLAVE the enclave program built from this tree.
func TestScript(t *testing.T) {
	vectors, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	testprog.Script(t,
		"VECTORS="+vectors,
		// Never reach for the EC2 metadata service from a test.
		"AWS_EC2_METADATA_DISABLED=true",
	)
}
