package host

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
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
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Go(func() { r.relay(ctx, c) })
	}
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
	stop := context.AfterFunc(ctx, func() { c.Close(); up.Close() })
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = io.Copy(up, c); closeWrite(up) })
	_, _ = io.Copy(c, up)
	closeWrite(c)
	wg.Wait()
}
