package e2e

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"crypto/ed25519"

	"github.com/tmkms-nitro/tmkms-nitro/internal/privval"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
	"github.com/tmkms-nitro/tmkms-nitro/internal/transport"
)

// Signer is an in-process signer under test.
type Signer struct {
	*signer.Signer
	Logs *SyncBuffer
	// Refused counts the requests the signer refused or failed.
	Refused *atomic.Int64
}

// StartSigner runs our signer (state file in a fresh temp dir) dialing addr
// until the test ends.
func StartSigner(t testing.TB, addr, chainID string, key signer.Key, d privval.Dialect) *Signer {
	t.Helper()
	a, err := transport.ParseAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	logs := &SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store, err := signstate.Open(filepath.Join(t.TempDir(), "state"), signstate.Options{AllowMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	refused := new(atomic.Int64)
	s := signer.New(key, chainID, store.State(), store, signer.Options{Log: log, Observe: func(e signer.Event) {
		if e.Err != nil {
			refused.Add(1)
		}
	}})
	_, identity, _ := ed25519.GenerateKey(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		privval.NewHandler(s, d, log).Run(ctx, func(ctx context.Context) (net.Conn, error) {
			return transport.Dial(ctx, a, identity)
		}, privval.Options{})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		store.Close()
		if t.Failed() {
			t.Logf("signer log:\n%s", logs)
		}
	})
	return &Signer{Signer: s, Logs: logs, Refused: refused}
}

// SyncBuffer collects output from several goroutines.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
