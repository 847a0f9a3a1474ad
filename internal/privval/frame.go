package privval

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	pvproto "github.com/cometbft/cometbft/api/cometbft/privval/v1"
)

// Size bounds. CometBFT v0.34–v0.39 and v1.0 nodes read at most 10 KiB per
// message; v0.40 derives ~1 MiB from the maximum vote extension size.
const (
	DefaultMaxMessageSize = 64 << 10
	MaxMessageSize        = 4 << 20
)

var (
	// ErrMessageTooLarge marks a length prefix above the configured bound.
	ErrMessageTooLarge = errors.New("privval message too large")
	// ErrMalformed marks a frame that is not a valid privval message.
	ErrMalformed = errors.New("malformed privval message")
)

// readFrame reads one uvarint-length-prefixed message body. It reads the
// whole body whatever the transport's chunking (SecretConnection frames,
// partial socket reads).
func readFrame(r *bufio.Reader, limit int) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, err
		}
		if _, ok := err.(interface{ Timeout() bool }); ok {
			return nil, err
		}
		return nil, fmt.Errorf("%w: bad length prefix: %v", ErrMalformed, err)
	}
	if n > uint64(limit) {
		return nil, fmt.Errorf("%w: length prefix says %d bytes, limit is %d", ErrMessageTooLarge, n, limit)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("failed to read %d-byte message: %w", n, err)
	}
	return buf, nil
}

// decodeMessage decodes a request.
func decodeMessage(b []byte) (*pvproto.Message, error) {
	var m pvproto.Message
	if err := m.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return &m, nil
}

// appendFrame appends the uvarint length prefix and body.
func appendFrame(dst, body []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(body)))
	return append(dst, body...)
}

// appendField appends a length-delimited protobuf field.
func appendField(dst []byte, field int, v []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(field)<<3|2)
	dst = binary.AppendUvarint(dst, uint64(len(v)))
	return append(dst, v...)
}
