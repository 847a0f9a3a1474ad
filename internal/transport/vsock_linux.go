package transport

import (
	"context"
	"net"

	"github.com/mdlayher/vsock"
)

func dialVsock(ctx context.Context, cid, port uint32) (net.Conn, error) {
	return vsock.DialContext(ctx, cid, port, nil)
}

func listenVsock(port uint32) (net.Listener, error) {
	return vsock.Listen(port, nil)
}
