package host

import (
	"context"
	"log/slog"
	"net"
	"time"
)

// Relay carries the enclave's connections to one etcd member, as
// vsock-proxy does for KMS: bytes only. TLS runs from the enclave to the
// member, so the host can delay or drop what it relays, never read or
// forge it.
type Relay struct {
	Target string // host:port of the member
	Log    *slog.Logger
}

// relayDial bounds reaching the member; the enclave's own deadlines
// bound the rest.
const relayDial = 5 * time.Second

// Serve relays each connection accepted on ln until ctx ends, then closes
// them all and returns once every relay goroutine is done.
func (r *Relay) Serve(ctx context.Context, ln net.Listener) error {
	if err := serveEach(ctx, ln, r.relay); err != ctx.Err() { // ctx's end is no failure of the relay
		return err
	}
	return nil
}

func (r *Relay) relay(ctx context.Context, c net.Conn) {
	defer c.Close()
	dctx, cancel := context.WithTimeout(ctx, relayDial)
	var d net.Dialer
	up, err := d.DialContext(dctx, "tcp", r.Target)
	cancel()
	if err != nil {
		r.Log.Warn("anchor relay: etcd member unreachable", "member", r.Target, "err", err)
		return
	}
	defer up.Close()
	pipe(ctx, c, up)
}
