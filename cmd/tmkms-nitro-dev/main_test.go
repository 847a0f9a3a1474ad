package main

import (
	"context"
	"os"
	"testing"

	"github.com/tmkms-nitro/tmkms-nitro/internal/devcli"
	"github.com/tmkms-nitro/tmkms-nitro/internal/testprog"
)

func TestMain(m *testing.M) {
	testprog.Main(m, "tmkms-nitro-dev", func() int {
		return devcli.Main(context.Background(), os.Args[1:], &devcli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
	})
}

// TestScript runs the command-line scripts in testdata/*.txt. $ENCLAVE is
// the enclave program built from this tree.
func TestScript(t *testing.T) {
	testprog.Script(t)
}
