package nsm

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"
)

// socketTimeout bounds one request to a socket NSM, which answers in
// milliseconds.
const socketTimeout = 10 * time.Second

// Socket returns an NSM reached over a unix socket at path: the software
// NSM that local mode's launcher serves in place of /dev/nsm. Each request
// is the CBOR the device takes, framed by a 4-byte big-endian length, and
// so is each answer; the enclave checks answers exactly as it checks the
// device's.
func Socket(path string) *Device {
	return &Device{t: socketTransport{path: path}}
}

type socketTransport struct{ path string }

// roundTrip connects once per request, so that a launcher restarted while
// the enclave runs serves the next request.
func (t socketTransport) roundTrip(req []byte) ([]byte, error) {
	c, err := net.DialTimeout("unix", t.path, socketTimeout)
	if err != nil {
		return nil, fmt.Errorf("nsm: cannot reach the software NSM: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(socketTimeout))
	if err := WriteFrame(c, req); err != nil {
		return nil, fmt.Errorf("nsm: sending request: %w", err)
	}
	resp, err := ReadFrame(c, maxResponseSize)
	if err != nil {
		return nil, fmt.Errorf("nsm: reading answer: %w", err)
	}
	return resp, nil
}

func (socketTransport) close() error { return nil }

// MaxRequestSize is the largest request the device takes.
const MaxRequestSize = maxRequestSize

// WriteFrame writes b with its 4-byte big-endian length.
func WriteFrame(w io.Writer, b []byte) error {
	buf := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	_, err := w.Write(append(buf, b...))
	return err
}

// ReadFrame reads one frame of at most limit bytes.
func ReadFrame(r io.Reader, limit int) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > uint32(limit) {
		return nil, fmt.Errorf("frame of %d bytes, limit %d", size, limit)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}
