//go:build linux

package nsm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// iovec and rawMessage mirror struct nsm_iovec and struct nsm_raw from the
// kernel's include/uapi/linux/nsm.h: two {__u64 addr; __u64 len} pairs.
type iovec struct {
	addr uint64
	len  uint64
}

type rawMessage struct {
	request  iovec
	response iovec
}

// ioctlRaw is NSM_IOCTL_RAW = _IOWR(0x0A, 0, struct nsm_raw), spelled out
// so that the size term cannot drift from the struct: 0xC0200A00.
const ioctlRaw = 3<<30 | uint(unsafe.Sizeof(rawMessage{}))<<16 | 0x0A<<8 | 0

// ioctlTransport owns the request and response buffers. They are allocated
// once, on the heap, and referenced by Device, so their addresses stay valid
// while the kernel reads and writes them.
type ioctlTransport struct {
	f    *os.File
	req  []byte
	resp []byte
}

func openTransport(path string) (transport, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("nsm: failed to open %s: %w (not inside a Nitro Enclave, or the nsm driver is not loaded)", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("nsm: failed to open %s: %w", path, err)
	}
	return &ioctlTransport{
		f:    f,
		req:  make([]byte, maxRequestSize),
		resp: make([]byte, maxResponseSize),
	}, nil
}

func (t *ioctlTransport) close() error {
	if err := t.f.Close(); err != nil {
		return fmt.Errorf("nsm: failed to close %s: %w", t.f.Name(), err)
	}
	return nil
}

func (t *ioctlTransport) roundTrip(req []byte) ([]byte, error) {
	if len(req) > len(t.req) {
		return nil, fmt.Errorf("nsm: request is %d bytes, limit %d", len(req), len(t.req))
	}
	n := copy(t.req, req)
	msg := rawMessage{
		request:  iovec{addr: uint64(uintptr(unsafe.Pointer(&t.req[0]))), len: uint64(n)},
		response: iovec{addr: uint64(uintptr(unsafe.Pointer(&t.resp[0]))), len: uint64(len(t.resp))},
	}
	if err := t.ioctl(&msg); err != nil {
		return nil, err
	}
	if msg.response.len > uint64(len(t.resp)) {
		return nil, fmt.Errorf("nsm: driver reported a %d-byte response, buffer is %d", msg.response.len, len(t.resp))
	}
	return append([]byte(nil), t.resp[:msg.response.len]...), nil
}

// ioctl goes through SyscallConn so the descriptor cannot be closed and
// reused underneath the call.
func (t *ioctlTransport) ioctl(msg *rawMessage) error {
	rc, err := t.f.SyscallConn()
	if err != nil {
		return fmt.Errorf("nsm: %w", err)
	}
	var errno unix.Errno
	err = rc.Control(func(fd uintptr) {
		for {
			_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, uintptr(ioctlRaw), uintptr(unsafe.Pointer(msg)))
			if errno != unix.EINTR {
				return
			}
		}
	})
	if err != nil {
		return fmt.Errorf("nsm: %w", err)
	}
	if errno != 0 {
		return fmt.Errorf("nsm: ioctl NSM_IOCTL_RAW failed: %w", errno)
	}
	return nil
}
