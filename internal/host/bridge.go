package host

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/metrics"
	"github.com/tmkms-nitro/tmkms-nitro/internal/transport"
)

// Bridge connects each enclave connection on the validator channel to the
// validator's priv_validator_laddr and copies bytes both ways. It never
// looks inside: for tcp:// validators the SecretConnection runs from the
// enclave to the node, so the host sees only ciphertext.
type Bridge struct {
	Validator transport.Addr
	Log       *slog.Logger
	Metrics   *metrics.Metrics // optional
}

// Serve accepts enclave connections until ctx ends, and returns once
// every connection it bridged is closed.
func (b *Bridge) Serve(ctx context.Context, ln net.Listener) error {
	return serveEach(ctx, ln, b.splice)
}

func (b *Bridge) splice(ctx context.Context, ec net.Conn) {
	defer ec.Close()
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	vc, err := transport.DialPlain(dctx, b.Validator) // over tcp the payload is the enclave's SecretConnection
	cancel()
	if err != nil {
		// The enclave redials with backoff; the node may not be up yet.
		b.Log.Debug("validator not reachable", "address", b.Validator.String(), "err", err)
		return
	}
	defer vc.Close()
	if b.Metrics != nil {
		b.Metrics.ValidatorReconnect()
		b.Metrics.ValidatorConnection(true)
		defer b.Metrics.ValidatorConnection(false)
	}
	pipe(ctx, ec, vc)
}
