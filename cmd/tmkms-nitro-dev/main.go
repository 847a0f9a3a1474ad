// Command tmkms-nitro-dev runs tmkms-nitro's development tools: the local
// demo, the benchmark and a local KMS. The production host program is
// tmkms-nitro-helper, which carries none of them.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/tmkms-nitro/tmkms-nitro/internal/devcli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := devcli.Main(ctx, os.Args[1:], &devcli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
	stop()
	os.Exit(code)
}
