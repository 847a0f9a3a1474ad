package softnsm

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// peerExecutable is the executable of the process at the other end of a
// unix socket, from its SO_PEERCRED credentials.
func peerExecutable(c net.Conn) (string, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return "", fmt.Errorf("softnsm: %T is not a unix socket", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return "", err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return "", err
	}
	if credErr != nil {
		return "", fmt.Errorf("softnsm: peer credentials: %w", credErr)
	}
	return fmt.Sprintf("/proc/%d/exe", cred.Pid), nil
}
