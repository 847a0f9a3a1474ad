package transport

import (
	"errors"
	"fmt"
	"net"
	"os"
)

// Listen listens on a. For unix it removes a stale socket file first (one
// no process accepts on), and refuses to replace anything else. tcp
// listeners are plain: callers run Handshake on accepted connections.
func Listen(a Addr) (net.Listener, error) {
	switch a.Scheme {
	case Unix:
		if err := removeStaleSocket(a.Path); err != nil {
			return nil, err
		}
		return net.Listen("unix", a.Path)
	case TCP:
		return net.Listen("tcp", a.Host)
	case Vsock:
		return listenVsock(a.Port)
	}
	return nil, fmt.Errorf("transport: %w: cannot listen on %q", ErrAddress, a.String())
}

func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("transport: %s exists and is not a socket", path)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return fmt.Errorf("transport: %s is in use by another process", path)
	}
	return os.Remove(path)
}
