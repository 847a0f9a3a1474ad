package privval_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pvproto "github.com/cometbft/cometbft/api/cometbft/privval/v1"
	cmtproto "github.com/cometbft/cometbft/api/cometbft/types/v1"
	"github.com/cometbft/cometbft/types"

	"github.com/tmkms-nitro/tmkms-nitro/internal/e2e"
	"github.com/tmkms-nitro/tmkms-nitro/internal/privval"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// rawNode is a hand-driven node side: it accepts the signer's connections
// and writes arbitrary bytes at it.
type rawNode struct {
	t  *testing.T
	ln net.Listener
	s  *e2e.Signer
	pk []byte
}

func newRawNode(t *testing.T) *rawNode {
	path := filepath.Join(t.TempDir(), "pv.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	key, _ := signer.GenerateEd25519()
	return &rawNode{t: t, ln: ln, s: e2e.StartSigner(t, "unix://"+path, chain, key, privval.Auto), pk: key.PubKey().Bytes}
}

func (n *rawNode) accept() net.Conn {
	n.t.Helper()
	n.ln.(*net.UnixListener).SetDeadline(time.Now().Add(5 * time.Second))
	c, err := n.ln.Accept()
	if err != nil {
		n.t.Fatalf("signer did not (re)dial: %v", err)
	}
	n.t.Cleanup(func() { c.Close() })
	return c
}

func frame(m *pvproto.Message) []byte {
	b, err := m.Marshal()
	if err != nil {
		panic(err)
	}
	return binary.AppendUvarint(nil, uint64(len(b))) // body appended by caller
}

func encode(m *pvproto.Message) []byte {
	b, _ := m.Marshal()
	return append(frame(m), b...)
}

func readResponse(t *testing.T, c net.Conn) *pvproto.Message {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	n, err := binary.ReadUvarint(r)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	var m pvproto.Message
	if err := m.Unmarshal(buf); err != nil {
		t.Fatal(err)
	}
	return &m
}

func expectDropped(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("connection not dropped (read %d bytes)", n)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("connection not dropped within 5s")
	}
}

var ping = &pvproto.Message{Sum: &pvproto.Message_PingRequest{PingRequest: &pvproto.PingRequest{}}}

func TestFraming(t *testing.T) {
	n := newRawNode(t)

	// A request written one byte at a time is read whole.
	c := n.accept()
	for _, b := range encode(ping) {
		c.Write([]byte{b})
	}
	if readResponse(t, c).GetPingResponse() == nil {
		t.Fatal("no ping response to a byte-by-byte request")
	}

	// A 4 GiB length prefix: logged, dropped, redialed, no allocation.
	c.Write(binary.AppendUvarint(nil, 4<<30))
	expectDropped(t, c)
	c = n.accept()
	if !strings.Contains(n.s.Logs.String(), "privval message too large") {
		t.Errorf("no log line for the oversized frame:\n%s", n.s.Logs)
	}

	// Malformed body: dropped and redialed.
	c.Write([]byte{3, 0xff, 0xff, 0xff})
	expectDropped(t, c)
	c = n.accept()

	// A response type sent as a request breaks the protocol.
	c.Write(encode(&pvproto.Message{Sum: &pvproto.Message_PingResponse{PingResponse: &pvproto.PingResponse{}}}))
	expectDropped(t, c)
	c = n.accept()

	// A 40 KiB vote extension spans many socket reads and still works.
	ext := bytes.Repeat([]byte{7}, 40<<10)
	vote := cmtproto.Vote{Type: types.PrecommitType, Height: 1, BlockID: cmtproto.BlockID{Hash: bytes.Repeat([]byte{1}, 32),
		PartSetHeader: cmtproto.PartSetHeader{Total: 1, Hash: bytes.Repeat([]byte{2}, 32)}}, Timestamp: time.Unix(1, 0).UTC(), Extension: ext}
	c.Write(encode(&pvproto.Message{Sum: &pvproto.Message_SignVoteRequest{SignVoteRequest: &pvproto.SignVoteRequest{Vote: &vote, ChainId: chain}}}))
	resp := readResponse(t, c).GetSignedVoteResponse()
	if resp == nil || resp.Error != nil || len(resp.Vote.ExtensionSignature) != 64 || !bytes.Equal(resp.Vote.Extension, ext) {
		t.Fatalf("large vote: %+v", resp.GetError())
	}
	if st := n.s.LastState(); st.Height != 1 || st.Step != signstate.StepPrecommit {
		t.Fatalf("state %v", st.HRS())
	}
}

// memStore is a Store for tests that exercise the protocol, not durability.
type memStore struct{}

func (memStore) Save(context.Context, signstate.State) error { return nil }

// FuzzHandle feeds arbitrary request bodies to the handler: it must never
// panic, and whatever it answers must be a well-formed Message.
func FuzzHandle(f *testing.F) {
	key, _ := signer.NewEd25519(bytes.Repeat([]byte{1}, 32))
	vote := cmtproto.Vote{Type: types.PrevoteType, Height: 3, BlockID: cmtproto.BlockID{Hash: bytes.Repeat([]byte{1}, 32),
		PartSetHeader: cmtproto.PartSetHeader{Total: 1, Hash: bytes.Repeat([]byte{2}, 32)}}, Timestamp: time.Unix(1, 0).UTC()}
	prop := cmtproto.Proposal{Type: types.ProposalType, Height: 3, PolRound: -1, BlockID: vote.BlockID, Timestamp: vote.Timestamp}
	for _, m := range []*pvproto.Message{
		ping,
		{Sum: &pvproto.Message_PubKeyRequest{PubKeyRequest: &pvproto.PubKeyRequest{ChainId: chain}}},
		{Sum: &pvproto.Message_SignVoteRequest{SignVoteRequest: &pvproto.SignVoteRequest{Vote: &vote, ChainId: chain}}},
		{Sum: &pvproto.Message_SignProposalRequest{SignProposalRequest: &pvproto.SignProposalRequest{Proposal: &prop, ChainId: chain}}},
		{Sum: &pvproto.Message_SignBytesRequest{SignBytesRequest: &pvproto.SignBytesRequest{Value: []byte("x")}}},
	} {
		b, _ := m.Marshal()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// The framing refuses bodies over the configured maximum first;
		// the default bounds one execution here.
		if len(body) > privval.DefaultMaxMessageSize {
			return
		}
		s := signer.New(key, chain, signstate.State{}, memStore{}, signer.Options{})
		resp, err := privval.NewHandler(s, privval.Auto, nil).Handle(context.Background(), body)
		if err != nil {
			return
		}
		var m pvproto.Message
		if err := m.Unmarshal(resp); err != nil || m.Sum == nil {
			t.Fatalf("handler produced an undecodable response: %v", err)
		}
	})
}
