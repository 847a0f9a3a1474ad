// Command tmkms-nitro-enclave is the signer inside the Nitro Enclave. The
// enclave image starts it with no arguments; --local DIR runs it as a plain
// process for local mode (unix sockets, software NSM, local KMS).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclave"
)

func main() {
	local := flag.String("local", "", "run in local mode with the files under this directory (made by 'tmkms-nitro-helper local init')")
	jsonLogs := flag.Bool("log-json", false, "log JSON instead of text")
	flag.Parse()
	// $TMKMS_LOG_LEVEL: debug, info (default), warn or error.
	var level slog.Level
	if level.UnmarshalText([]byte(os.Getenv("TMKMS_LOG_LEVEL"))) != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if *jsonLogs {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	log := slog.New(h)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p, err := platform(*local, log)
	if err == nil {
		err = enclave.Run(ctx, p)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tmkms-nitro-enclave: error:", err)
		os.Exit(1)
	}
}

func platform(local string, log *slog.Logger) (enclave.Platform, error) {
	if local != "" {
		return enclave.Local(local, log)
	}
	return enclave.Nitro(log)
}
