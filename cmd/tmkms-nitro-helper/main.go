// Command tmkms-nitro-helper is the host side of the Nitro Enclave signer:
// it provisions the enclave, feeds it configuration and credentials,
// persists its double-sign state and connects it to the validator.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/tmkms-nitro/tmkms-nitro/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], &cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
	stop()
	os.Exit(code)
}
