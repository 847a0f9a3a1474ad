package host

import (
	"context"
	"io"
	"net"
	"sync"
)

// serveEach hands each connection accepted on ln to handle, in its own
// goroutine, until ctx ends; it returns ctx.Err() then, or the accept
// error, once every handle has returned.
func serveEach(ctx context.Context, ln net.Listener, handle func(context.Context, net.Conn)) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		wg.Go(func() { handle(ctx, c) })
	}
}

// pipe copies bytes both ways between a and b until both directions end,
// or until ctx does, which closes both. The end of one direction is passed
// on as a half-close, so that a peer waiting for EOF still gets the other
// direction's remaining bytes.
func pipe(ctx context.Context, a, b net.Conn) {
	stop := context.AfterFunc(ctx, func() { a.Close(); b.Close() })
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = io.Copy(b, a); closeWrite(b) })
	_, _ = io.Copy(a, b)
	closeWrite(a)
	wg.Wait()
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		c.Close()
	}
}
