package bench

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"

	"github.com/tmkms-nitro/tmkms-nitro/internal/privval"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
	"github.com/tmkms-nitro/tmkms-nitro/internal/transport"
)

// startCore runs configuration (b): our signer with a native state file in
// dir behind the privval handler, dialing the node's unix socket, wired as
// the enclave wires it but with the state file local instead of on the
// host.
func startCore(ctx context.Context, dir string, log *slog.Logger) (*subject, error) {
	sock := filepath.Join(dir, "node.sock")
	n, err := listenNode(sock, chainID)
	if err != nil {
		return nil, err
	}
	statePath := filepath.Join(dir, "state")
	sc, err := newSignerCore(statePath, log)
	if err != nil {
		n.close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	addr := transport.Addr{Scheme: "unix", Path: sock}
	go func() {
		defer close(done)
		sc.handler.Run(ctx, func(ctx context.Context) (net.Conn, error) { return transport.Dial(ctx, addr, nil) }, privval.Options{})
	}()
	stop := func() { cancel(); <-done; sc.store.Close(); n.close() }
	if err := n.connect(connectTimeout); err != nil {
		stop()
		return nil, err
	}
	return &subject{cfg: Core, node: n, next: 1, stop: stop, readState: nativeState(statePath)}, nil
}

// signerCore is a fresh key, a state file and the handler in front of them.
type signerCore struct {
	store   *signstate.File
	signer  *signer.Signer
	handler *privval.Handler
}

func newSignerCore(statePath string, log *slog.Logger) (*signerCore, error) {
	key, err := signer.GenerateEd25519()
	if err != nil {
		return nil, err
	}
	store, err := signstate.Open(statePath, signstate.Options{AllowMissing: true, Logger: log})
	if err != nil {
		return nil, err
	}
	s := signer.New(key, chainID, store.State(), store, signer.Options{Log: log})
	return &signerCore{store: store, signer: s, handler: privval.NewHandler(s, privval.Auto, log)}, nil
}
