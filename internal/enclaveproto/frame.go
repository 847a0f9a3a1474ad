// Package enclaveproto is the wire protocol between the host helper and the
// enclave: the config push and key generation (vsock 5050), the double-sign
// state channel (5555) and the log channel (6050), which carries log
// records for people and events (Signed, Refused) for programs. The
// validator connection (5000) carries raw privval bytes and is not framed
// here.
//
// Every message is one frame:
//
//	offset  size  field
//	0       1     magic 'T'
//	1       1     protocol version (1)
//	2       1     message type (see Type)
//	3       1     flags, reserved, must be 0
//	4       8     request id, big endian; a response repeats its request's id
//	12      4     payload length, big endian
//	16      n     payload: one CBOR map (deterministic encoding)
//
// Trust: each side treats the other's bytes as hostile input. The enclave
// cannot trust the host, and the host must survive a buggy enclave. Read
// refuses a length above the caller's limit before allocating anything and
// decodes CBOR strictly: no duplicate keys, no indefinite lengths, no tags,
// no unknown fields, bounded nesting and counts, no trailing bytes. Any
// malformed input is an error wrapping one of ErrMalformed, ErrTooLarge,
// ErrVersion or ErrUnexpectedType; it is never a panic.
//
// The package must never print secrets: Credentials and ImportKey redact
// themselves in fmt, slog and JSON output. It never interprets the state
// record; that is internal/signstate's job.
package enclaveproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Frame constants.
const (
	Magic      = 'T'
	Version    = 2 // changed with any message's encoding: a host and an enclave of different builds refuse each other clearly
	HeaderSize = 16
)

// Per-channel payload limits, for Read's limit argument. Each message type
// also has its own bound (MaxPayload) which Write enforces, so a sender
// never produces a frame its peer would refuse.
const (
	MaxConfigPayload = 1 << 20  // config channel: sealed keys, attestation documents
	MaxStatePayload  = 8 << 10  // state channel: one state record (~1 KiB) plus HRS
	MaxLogPayload    = 16 << 10 // log channel: one log record or event
)

// Errors. Every decoding failure wraps exactly one of these (or is io.EOF
// for a connection closed cleanly between frames, or io.ErrUnexpectedEOF
// for one closed inside a frame).
var (
	ErrMalformed      = errors.New("malformed message")
	ErrTooLarge       = errors.New("message too large")
	ErrVersion        = errors.New("unsupported protocol version")
	ErrUnexpectedType = errors.New("unexpected message type")
)

// Write encodes m as one frame with request id id and writes it with a
// single call to w.Write, so concurrent writers on one net.Conn never
// interleave their frames.
func Write(w io.Writer, m Message, id uint64) error {
	frame, err := marshal(m, id)
	if err != nil {
		return err
	}
	if _, err := w.Write(frame); err != nil {
		return fmt.Errorf("enclaveproto: failed to write %s: %w", m.Type(), err)
	}
	return nil
}

// marshal returns the frame Write writes.
func marshal(m Message, id uint64) ([]byte, error) {
	if m == nil {
		return nil, errors.New("enclaveproto: cannot marshal a nil message")
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("enclaveproto: refusing to send invalid %s: %w", m.Type(), err)
	}
	payload, err := encMode.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("enclaveproto: failed to encode %s: %w", m.Type(), err)
	}
	if limit := MaxPayload(m.Type()); len(payload) > limit {
		return nil, fmt.Errorf("enclaveproto: %s payload is %d bytes, above its %d-byte limit: %w",
			m.Type(), len(payload), limit, ErrTooLarge)
	}
	frame := make([]byte, HeaderSize+len(payload))
	putHeader(frame, m.Type(), id, len(payload))
	copy(frame[HeaderSize:], payload)
	return frame, nil
}

func putHeader(b []byte, t Type, id uint64, n int) {
	b[0], b[1], b[2], b[3] = Magic, Version, byte(t), 0
	binary.BigEndian.PutUint64(b[4:], id)
	binary.BigEndian.PutUint32(b[12:], uint32(n))
}

// Read reads one frame from r and decodes it. It refuses a payload longer
// than limit (or than its type's MaxPayload) before allocating it, and
// allocates an accepted one as its bytes arrive, so a frame whose header
// declares a megabyte that never comes costs payloadChunk, not a megabyte.
// It reads exactly one frame, so r need not be buffered.
//
// Once the header is read the request id is returned even with an error,
// so a server can answer with an Error under the right id. After an error
// the stream may be mid-frame: close the connection.
func Read(r io.Reader, limit int) (Message, uint64, error) {
	var h [HeaderSize]byte
	if n, err := io.ReadFull(r, h[:]); err != nil {
		if n == 0 && errors.Is(err, io.EOF) {
			return nil, 0, io.EOF
		}
		return nil, 0, fmt.Errorf("enclaveproto: failed to read frame header: %w", err)
	}
	t, id, n, err := parseHeader(h[:], limit)
	if err != nil {
		return nil, id, err
	}
	payload, err := readPayload(r, n)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, id, fmt.Errorf("enclaveproto: failed to read %s payload: %w", t, err)
	}
	m, err := unmarshal(t, payload)
	return m, id, err
}

// payloadChunk is the most of a payload Read allocates ahead of its bytes.
const payloadChunk = 64 << 10

// readPayload reads exactly n bytes from r into a buffer that starts at
// payloadChunk and doubles as it fills: memory follows what the peer has
// sent (at most about twice that), not what its header claimed.
func readPayload(r io.Reader, n int) ([]byte, error) {
	buf := make([]byte, 0, min(n, payloadChunk))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(len(buf), n-len(buf)))
		}
		got, err := io.ReadFull(r, buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+got]
		if err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// parseHeader checks a header and returns its type, id and payload length.
func parseHeader(h []byte, limit int) (Type, uint64, int, error) {
	id := binary.BigEndian.Uint64(h[4:])
	if h[0] != Magic {
		return 0, id, 0, fmt.Errorf("enclaveproto: bad magic 0x%02x (is the peer an older tmkms-light build?): %w", h[0], ErrVersion)
	}
	if h[1] != Version {
		return 0, id, 0, fmt.Errorf("enclaveproto: peer speaks protocol version %d, want %d (host and enclave builds differ): %w", h[1], Version, ErrVersion)
	}
	t := Type(h[2])
	if _, ok := newMessage(t); !ok {
		return 0, id, 0, fmt.Errorf("enclaveproto: unknown message type 0x%02x: %w", h[2], ErrUnexpectedType)
	}
	if h[3] != 0 {
		return 0, id, 0, fmt.Errorf("enclaveproto: reserved flags 0x%02x set: %w", h[3], ErrMalformed)
	}
	// Compare in uint64 so a 4 GiB length cannot wrap on any platform.
	n := uint64(binary.BigEndian.Uint32(h[12:]))
	if n > uint64(max(limit, 0)) || n > uint64(MaxPayload(t)) {
		return 0, id, 0, fmt.Errorf("enclaveproto: %s payload length %d exceeds the limit of %d bytes: %w",
			t, n, min(max(limit, 0), MaxPayload(t)), ErrTooLarge)
	}
	return t, id, int(n), nil
}
