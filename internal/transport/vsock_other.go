//go:build !linux

package transport

import (
	"context"
	"fmt"
	"net"
	"runtime"
)

func dialVsock(context.Context, uint32, uint32) (net.Conn, error) {
	return nil, fmt.Errorf("transport: vsock is not supported on %s", runtime.GOOS)
}

func listenVsock(uint32) (net.Listener, error) {
	return nil, fmt.Errorf("transport: vsock is not supported on %s", runtime.GOOS)
}
