// Package secretconn is CometBFT's SecretConnection: the authenticated,
// encrypted transport a validator node speaks to a remote signer over TCP
// (an ephemeral X25519 exchange, a Merlin transcript, ChaCha20-Poly1305
// frames, and ed25519 signatures over the transcript's challenge).
//
// It is adapted from CometBFT's p2p/conn/secret_connection.go (Apache
// License 2.0). That package cannot be imported alone: it shares a package
// with the peer-to-peer multiplexer, whose configuration links a database
// engine into whatever imports it, and the enclave must not carry one. The
// protocol is unchanged; the differences are that the handshake takes a
// net.Conn and the standard library's ed25519 key, returns errors instead of
// panicking, and that the tests check interoperability with CometBFT's own
// implementation in both directions.
package secretconn

import (
	"bufio"
	"bytes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"time"

	cryptov1 "github.com/cometbft/cometbft/api/cometbft/crypto/v1"
	tmp2p "github.com/cometbft/cometbft/api/cometbft/p2p/v1"
	"github.com/cometbft/cometbft/libs/protoio"
	"github.com/cosmos/gogoproto/proto"
	gogotypes "github.com/cosmos/gogoproto/types"
	"github.com/oasisprotocol/curve25519-voi/primitives/merlin"
	"golang.org/x/crypto/chacha20poly1305"
)

const (
	dataLenSize      = 4
	dataMaxSize      = 1024
	totalFrameSize   = dataMaxSize + dataLenSize
	sealedFrameSize  = totalFrameSize + chacha20poly1305.Overhead
	aeadKeySize      = chacha20poly1305.KeySize
	aeadNonceSize    = chacha20poly1305.NonceSize
	challengeSize    = 32
	maxHandshakeMsg  = 1024 // both handshake messages are under 200 bytes
	writeBufferSize  = 128 * 1024
	readBufferSize   = 65 * 1024
	transcriptLabel  = "TENDERMINT_SECRET_CONNECTION_TRANSCRIPT_HASH"
	labelLowerPublic = "EPHEMERAL_LOWER_PUBLIC_KEY"
	labelUpperPublic = "EPHEMERAL_UPPER_PUBLIC_KEY"
	labelDHSecret    = "DH_SECRET"
	labelMAC         = "SECRET_CONNECTION_MAC"
	hkdfInfo         = "TENDERMINT_SECRET_CONNECTION_KEY_AND_CHALLENGE_GEN"
)

var (
	// ErrHandshake marks a handshake that failed because of what the peer
	// sent (as opposed to an I/O error).
	ErrHandshake = errors.New("secretconn: handshake failed")
	// ErrFrame marks a frame that does not decrypt or is malformed: the
	// stream is corrupt or forged and the connection is unusable.
	ErrFrame = errors.New("secretconn: bad frame")
	// errNonceExhausted ends a connection rather than reuse a nonce.
	errNonceExhausted = errors.New("secretconn: nonce space exhausted")
)

type cryptoEd25519 = cryptov1.PublicKey_Ed25519

// Conn is an established SecretConnection. Reads and writes may run
// concurrently with each other; it is a net.Conn.
type Conn struct {
	net.Conn // the underlying connection: addresses, deadlines, Close
	remote   ed25519.PublicKey

	sendMu    sync.Mutex
	sendAEAD  cipher.AEAD
	sendNonce [aeadNonceSize]byte
	sendFrame [totalFrameSize]byte
	sendBuf   []byte // sealed frame
	w         *bufio.Writer

	recvMu    sync.Mutex
	recvAEAD  cipher.AEAD
	recvNonce [aeadNonceSize]byte
	recvBuf   []byte // sealed frame, then its plaintext
	pending   []byte // plaintext read from a frame but not yet returned
	r         *bufio.Reader
	recvErr   error // sticky: a bad frame ends the connection
}

// Handshake runs the SecretConnection handshake on c with identity as the
// local key. The caller authenticates the peer with RemotePubKey (compare
// its node id); the handshake proves only that the peer holds that key. It
// does not close c on failure and does not set deadlines: the caller bounds
// it.
func Handshake(c net.Conn, identity ed25519.PrivateKey) (*Conn, error) {
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("secretconn: ephemeral key: %w", err)
	}
	locEph := eph.PublicKey().Bytes()
	remEphBytes, err := exchange(c,
		&gogotypes.BytesValue{Value: locEph},
		func(m *gogotypes.BytesValue) ([]byte, error) {
			if len(m.Value) != 32 {
				return nil, fmt.Errorf("%w: ephemeral key is %d bytes", ErrHandshake, len(m.Value))
			}
			return m.Value, nil
		})
	if err != nil {
		return nil, err
	}
	remEph, err := ecdh.X25519().NewPublicKey(remEphBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: ephemeral key: %v", ErrHandshake, err)
	}
	lo, hi := locEph, remEphBytes
	locIsLeast := bytes.Compare(locEph, remEphBytes) < 0
	if !locIsLeast {
		lo, hi = hi, lo
	}
	// ECDH refuses low-order points (an all-zero secret), as CometBFT does.
	dh, err := eph.ECDH(remEph)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHandshake, err)
	}
	transcript := merlin.NewTranscript(transcriptLabel)
	transcript.AppendMessage(labelLowerPublic, lo)
	transcript.AppendMessage(labelUpperPublic, hi)
	transcript.AppendMessage(labelDHSecret, dh)
	var challenge [challengeSize]byte
	transcript.ExtractBytes(challenge[:], labelMAC)

	keys, err := hkdf.Key(sha256.New, dh, nil, hkdfInfo, 2*aeadKeySize+challengeSize)
	if err != nil {
		return nil, fmt.Errorf("secretconn: %w", err)
	}
	recvKey, sendKey := keys[:aeadKeySize], keys[aeadKeySize:2*aeadKeySize]
	if !locIsLeast {
		recvKey, sendKey = sendKey, recvKey
	}
	sc := &Conn{
		Conn:    c,
		sendBuf: make([]byte, 0, sealedFrameSize),
		recvBuf: make([]byte, sealedFrameSize),
		w:       bufio.NewWriterSize(c, writeBufferSize),
		r:       bufio.NewReaderSize(c, readBufferSize),
	}
	if sc.sendAEAD, err = chacha20poly1305.New(sendKey); err != nil {
		return nil, fmt.Errorf("secretconn: %w", err)
	}
	if sc.recvAEAD, err = chacha20poly1305.New(recvKey); err != nil {
		return nil, fmt.Errorf("secretconn: %w", err)
	}

	pub := identity.Public().(ed25519.PublicKey)
	auth := &tmp2p.AuthSigMessage{Sig: ed25519.Sign(identity, challenge[:])}
	auth.PubKey.Sum = &cryptoEd25519{Ed25519: pub}
	remote, err := exchange(sc, auth, func(m *tmp2p.AuthSigMessage) (ed25519.PublicKey, error) {
		k, ok := m.PubKey.Sum.(*cryptoEd25519)
		if !ok || len(k.Ed25519) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: peer's key is not an ed25519 key", ErrHandshake)
		}
		if !ed25519.Verify(k.Ed25519, challenge[:], m.Sig) {
			return nil, fmt.Errorf("%w: peer's challenge signature does not verify", ErrHandshake)
		}
		return k.Ed25519, nil
	})
	if err != nil {
		return nil, err
	}
	sc.remote = remote
	return sc, nil
}

// RemotePubKey is the peer's authenticated identity key.
func (c *Conn) RemotePubKey() ed25519.PublicKey { return c.remote }

// Write seals data into frames of at most dataMaxSize bytes each and
// flushes them. A write of at most dataMaxSize bytes is one frame.
func (c *Conn) Write(data []byte) (int, error) {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	n := 0
	for len(data) > 0 {
		chunk := data[:min(len(data), dataMaxSize)]
		data = data[len(chunk):]
		binary.LittleEndian.PutUint32(c.sendFrame[:], uint32(len(chunk)))
		copy(c.sendFrame[dataLenSize:], chunk)
		clear(c.sendFrame[dataLenSize+len(chunk):])
		sealed := c.sendAEAD.Seal(c.sendBuf[:0], c.sendNonce[:], c.sendFrame[:], nil)
		if err := incrNonce(&c.sendNonce); err != nil {
			return n, err
		}
		if _, err := c.w.Write(sealed); err != nil {
			return n, err
		}
		n += len(chunk)
	}
	return n, c.w.Flush()
}

// Read returns plaintext from the current frame, reading and opening the
// next frame when none is left.
func (c *Conn) Read(data []byte) (int, error) {
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	if len(c.pending) > 0 {
		n := copy(data, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	if c.recvErr != nil {
		return 0, c.recvErr
	}
	sealed := c.recvBuf[:sealedFrameSize]
	if _, err := io.ReadFull(c.r, sealed); err != nil {
		return 0, err
	}
	frame, err := c.recvAEAD.Open(sealed[:0], c.recvNonce[:], sealed, nil)
	if err != nil {
		c.recvErr = fmt.Errorf("%w: %v", ErrFrame, err)
		return 0, c.recvErr
	}
	if err := incrNonce(&c.recvNonce); err != nil {
		c.recvErr = err
		return 0, err
	}
	size := binary.LittleEndian.Uint32(frame)
	if size > dataMaxSize {
		c.recvErr = fmt.Errorf("%w: chunk of %d bytes, limit %d", ErrFrame, size, dataMaxSize)
		return 0, c.recvErr
	}
	chunk := frame[dataLenSize : dataLenSize+size]
	n := copy(data, chunk)
	c.pending = chunk[n:]
	return n, nil
}

// exchange sends ours and reads the peer's message at the same time: both
// sides write first, and a connection without buffering (net.Pipe, a full
// socket buffer) would deadlock if the writes were not concurrent.
func exchange[M any, PM interface {
	*M
	proto.Message
}, R any](c net.Conn, ours proto.Message, check func(PM) (R, error)) (R, error) {
	sent := make(chan error, 1)
	go func() {
		_, err := protoio.NewDelimitedWriter(c).WriteMsg(ours)
		sent <- err
	}()
	var theirs M
	_, rerr := protoio.NewDelimitedReader(c, maxHandshakeMsg).ReadMsg(PM(&theirs))
	var zero R
	if rerr != nil {
		// The writer may be blocked on a peer that stopped reading: end
		// its write before waiting for it. The connection is failed anyway.
		c.SetWriteDeadline(time.Unix(1, 0))
		<-sent
		return zero, fmt.Errorf("%w: reading peer's message: %v", ErrHandshake, rerr)
	}
	if err := <-sent; err != nil {
		return zero, fmt.Errorf("secretconn: sending handshake message: %w", err)
	}
	return check(PM(&theirs))
}

// incrNonce counts frames in the nonce's last 8 bytes (little endian) and
// refuses to wrap, which would reuse a nonce.
func incrNonce(nonce *[aeadNonceSize]byte) error {
	counter := binary.LittleEndian.Uint64(nonce[4:])
	if counter == math.MaxUint64 {
		return errNonceExhausted
	}
	binary.LittleEndian.PutUint64(nonce[4:], counter+1)
	return nil
}
