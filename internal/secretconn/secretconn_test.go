package secretconn

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"math"
	"net"
	"testing"
	"time"

	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	"github.com/cometbft/cometbft/libs/protoio"
	"github.com/cometbft/cometbft/p2p/conn"
	gogotypes "github.com/cosmos/gogoproto/types"
)

func newKey(t testing.TB) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// pipe returns both ends of a connection whose handshake deadline makes a
// hung test fail instead of stall.
func pipe(t testing.TB) (net.Conn, net.Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	deadline := time.Now().Add(10 * time.Second)
	a.SetDeadline(deadline)
	b.SetDeadline(deadline)
	return a, b
}

// peer is the other side of a connection under test.
type peer interface {
	io.ReadWriter
	pub() []byte
}

type cometPeer struct{ *conn.SecretConnection }

func (p cometPeer) pub() []byte { return p.RemotePubKey().Bytes() }

type ourPeer struct{ *Conn }

func (p ourPeer) pub() []byte { return p.RemotePubKey() }

// Interoperability with CometBFT's implementation, which the validator node
// runs, in both directions, and with ourselves.
func TestInterop(t *testing.T) {
	for _, other := range []string{"cometbft", "secretconn"} {
		t.Run(other, func(t *testing.T) {
			a, b := pipe(t)
			ourKey, theirKey := newKey(t), newKey(t)
			type result struct {
				p   peer
				err error
			}
			done := make(chan result, 1)
			go func() {
				if other == "cometbft" {
					sc, err := conn.MakeSecretConnection(b, cmted25519.PrivKey(theirKey))
					done <- result{cometPeer{sc}, err}
					return
				}
				sc, err := Handshake(b, theirKey)
				done <- result{ourPeer{sc}, err}
			}()
			ours, err := Handshake(a, ourKey)
			if err != nil {
				t.Fatalf("Handshake: %v", err)
			}
			r := <-done
			if r.err != nil {
				t.Fatalf("%s handshake: %v", other, r.err)
			}
			if !bytes.Equal(ours.RemotePubKey(), theirKey.Public().(ed25519.PublicKey)) {
				t.Error("our side authenticated the wrong key")
			}
			if !bytes.Equal(r.p.pub(), ourKey.Public().(ed25519.PublicKey)) {
				t.Errorf("%s authenticated the wrong key", other)
			}
			for _, size := range []int{1, 100, dataMaxSize, dataMaxSize + 1, 3*dataMaxSize + 17, 70000} {
				msg := bytes.Repeat([]byte{byte(size)}, size)
				roundTrip(t, ours, r.p, msg)
				roundTrip(t, r.p, ours, msg)
			}
		})
	}
}

func roundTrip(t *testing.T, from io.Writer, to io.Reader, msg []byte) {
	t.Helper()
	werr := make(chan error, 1)
	go func() {
		_, err := from.Write(msg)
		werr <- err
	}()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(to, got); err != nil {
		t.Fatalf("reading %d bytes: %v", len(msg), err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("writing %d bytes: %v", len(msg), err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("%d bytes arrived changed", len(msg))
	}
}

// A frame changed in transit ends the connection: the read fails, and so
// does every later one.
func TestTamperedFrame(t *testing.T) {
	a, b := pipe(t)
	mitmA, mitmB := pipe(t)
	// b <-> mitm relay that flips one bit of the first sealed frame after
	// the handshake; the handshake itself passes unchanged.
	go io.Copy(b, mitmA)
	go func() {
		buf := make([]byte, 64*1024)
		seen := 0
		for {
			n, err := b.Read(buf)
			if n > 0 {
				const handshake = 1 + 34 + sealedFrameSize // delimited ephemeral key, then the auth message in one frame
				if seen <= handshake && handshake < seen+n {
					buf[handshake-seen] ^= 1
				}
				seen += n
				mitmA.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	done := make(chan *Conn, 1)
	go func() {
		sc, err := Handshake(mitmB, newKey(t))
		if err != nil {
			t.Errorf("peer handshake: %v", err)
		}
		done <- sc
	}()
	ours, err := Handshake(a, newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	theirs := <-done
	if theirs == nil {
		t.FailNow()
	}
	go ours.Write([]byte("sign this vote"))
	buf := make([]byte, 100)
	if _, err := theirs.Read(buf); !errors.Is(err, ErrFrame) {
		t.Fatalf("Read of a tampered frame: %v, want ErrFrame", err)
	}
	if _, err := theirs.Read(buf); !errors.Is(err, ErrFrame) {
		t.Fatalf("second Read after a tampered frame: %v, want ErrFrame", err)
	}
}

// What a hostile peer can send during the handshake is refused with
// ErrHandshake, never a panic or a connection.
func TestHostilePeer(t *testing.T) {
	for name, ephemeral := range map[string][]byte{
		"short ephemeral key": bytes.Repeat([]byte{9}, 31),
		"low-order point":     make([]byte, 32),
	} {
		t.Run(name, func(t *testing.T) {
			a, b := pipe(t)
			go func() {
				protoio.NewDelimitedWriter(b).WriteMsg(&gogotypes.BytesValue{Value: ephemeral})
				io.Copy(io.Discard, b)
			}()
			if _, err := Handshake(a, newKey(t)); !errors.Is(err, ErrHandshake) {
				t.Fatalf("Handshake = %v, want ErrHandshake", err)
			}
		})
	}
}

func TestNonceExhausted(t *testing.T) {
	n := [aeadNonceSize]byte{}
	for i := 4; i < aeadNonceSize; i++ {
		n[i] = math.MaxUint8
	}
	if err := incrNonce(&n); !errors.Is(err, errNonceExhausted) {
		t.Fatalf("incrNonce at the last nonce = %v", err)
	}
}

// FuzzHandshake feeds arbitrary bytes as the peer's side of a handshake:
// it must fail cleanly (nobody can forge the peer's signature).
func FuzzHandshake(f *testing.F) {
	var seed bytes.Buffer
	protoio.NewDelimitedWriter(&seed).WriteMsg(&gogotypes.BytesValue{Value: bytes.Repeat([]byte{7}, 32)})
	f.Add(append(seed.Bytes(), bytes.Repeat([]byte{1}, sealedFrameSize)...))
	f.Add([]byte{0x22, 0x0a, 0x20})
	key := newKey(f)
	f.Fuzz(func(t *testing.T, stream []byte) {
		a, b := net.Pipe()
		defer a.Close()
		a.SetDeadline(time.Now().Add(5 * time.Second))
		go func() {
			go io.Copy(io.Discard, b)
			b.Write(stream)
			b.Close()
		}()
		if _, err := Handshake(a, key); err == nil {
			t.Fatal("handshake with arbitrary bytes succeeded")
		}
	})
}
