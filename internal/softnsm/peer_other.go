//go:build !linux

package softnsm

import (
	"errors"
	"net"
)

// peerExecutable needs Linux's SO_PEERCRED and /proc: local mode measures
// the enclave process that asks, and nothing else can say which one it is.
func peerExecutable(net.Conn) (string, error) {
	return "", errors.New("softnsm: the software NSM needs Linux to measure its caller")
}
