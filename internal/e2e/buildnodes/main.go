// Command buildnodes builds (or finds cached) every CometBFT node binary the
// end-to-end tests use, so that CI pays for the builds once, up front.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/tmkms-nitro/tmkms-nitro/internal/e2e"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := e2e.BuildAll(ctx, func(f string, a ...any) { fmt.Printf(f+"\n", a...) }); err != nil {
		fmt.Fprintln(os.Stderr, "buildnodes:", err)
		os.Exit(1)
	}
}
