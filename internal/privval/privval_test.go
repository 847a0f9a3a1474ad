package privval_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	cmtproto "github.com/cometbft/cometbft/api/cometbft/types/v1"
	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	cmtlog "github.com/cometbft/cometbft/libs/log"
	cmtprivval "github.com/cometbft/cometbft/privval"
	"github.com/cometbft/cometbft/types"

	"github.com/tmkms-nitro/tmkms-nitro/internal/e2e"
	"github.com/tmkms-nitro/tmkms-nitro/internal/privval"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
	"github.com/tmkms-nitro/tmkms-nitro/internal/transport"
)

const chain = "test-chain"

type harness struct {
	client *cmtprivval.SignerClient
	key    signer.Key
	*e2e.Signer
}

// newHarness runs our signer against CometBFT's own node-side privval code
// (SignerListenerEndpoint + SignerClient) over the given network.
func newHarness(t *testing.T, network string, d privval.Dialect, keyType string) *harness {
	t.Helper()
	var ln net.Listener
	var addr string
	switch network {
	case "unix":
		path := filepath.Join(t.TempDir(), "pv.sock")
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		ln, addr = cmtprivval.NewUnixListener(l), "unix://"+path
	case "tcp":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		nodeKey := cmted25519.GenPrivKey()
		ln = cmtprivval.NewTCPListener(l, nodeKey)
		addr = "tcp://" + transport.NodeID(ed25519.PublicKey(nodeKey.PubKey().Bytes())) + "@" + l.Addr().String()
	}
	endpoint := cmtprivval.NewSignerListenerEndpoint(cmtlog.NewNopLogger(), ln)
	client, err := cmtprivval.NewSignerClient(endpoint, chain)
	if err != nil {
		t.Fatal(err)
	}
	// Closing the client only drops its connection; stopping the
	// endpoint ends its accept and ping loops too.
	t.Cleanup(func() { endpoint.Stop() })
	key, err := signer.GenerateKey(keyType)
	if err != nil {
		t.Fatal(err)
	}
	s := e2e.StartSigner(t, addr, chain, key, d)
	if err := client.WaitForConnection(10 * time.Second); err != nil {
		t.Fatalf("signer did not connect: %v\n%s", err, s.Logs)
	}
	return &harness{client: client, key: key, Signer: s}
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 123456789, time.UTC)

func blockID(b byte) cmtproto.BlockID {
	if b == 0 {
		return cmtproto.BlockID{}
	}
	return cmtproto.BlockID{Hash: bytes.Repeat([]byte{b}, 32), PartSetHeader: cmtproto.PartSetHeader{Total: 1, Hash: bytes.Repeat([]byte{b + 1}, 32)}}
}

func newVote(typ cmtproto.SignedMsgType, h int64, r int32, b byte, ts time.Time) *cmtproto.Vote {
	return &cmtproto.Vote{
		Type: typ, Height: h, Round: r, BlockID: blockID(b), Timestamp: ts,
		ValidatorAddress: bytes.Repeat([]byte{0xaa}, 20), ValidatorIndex: 3, Extension: []byte("ext"),
	}
}

func remoteCode(t *testing.T, err error) int {
	t.Helper()
	var rse *cmtprivval.RemoteSignerError
	if !errors.As(err, &rse) {
		t.Fatalf("err = %v, want a RemoteSignerError", err)
	}
	return rse.Code
}

// forEachKeyType runs f for each key type the signer supports.
func forEachKeyType(t *testing.T, f func(t *testing.T, keyType string)) {
	for _, kt := range signer.KeyTypes() {
		t.Run(kt, func(t *testing.T) { f(t, kt) })
	}
}

func TestSignerAgainstCometBFTClient(t *testing.T) {
	forEachKeyType(t, testSignerAgainstCometBFTClient)
}

func testSignerAgainstCometBFTClient(t *testing.T, keyType string) {
	for _, tc := range []struct {
		network string
		dialect privval.Dialect
	}{{"unix", privval.Auto}, {"tcp", privval.Auto}, {"unix", privval.V1}} {
		t.Run(tc.network+"/"+tc.dialect.String(), func(t *testing.T) {
			h := newHarness(t, tc.network, tc.dialect, keyType)
			pk, err := h.client.GetPubKey()
			if err != nil {
				t.Fatal(err)
			}
			// CometBFT v1 builds the key from pub_key_type and
			// pub_key_bytes: the type must be its name for the key.
			if pk.Type() != keyType || !bytes.Equal(pk.Bytes(), h.key.PubKey().Bytes) {
				t.Fatalf("pubkey %s %X, want %s %X", pk.Type(), pk.Bytes(), keyType, h.key.PubKey().Bytes)
			}

			p := &cmtproto.Proposal{Type: types.ProposalType, Height: 1, PolRound: -1, BlockID: blockID(1), Timestamp: t0}
			if err := h.client.SignProposal(chain, p); err != nil {
				t.Fatal(err)
			}
			if !pk.VerifySignature(types.ProposalSignBytes(chain, p), p.Signature) {
				t.Fatal("proposal signature does not verify")
			}

			v := newVote(types.PrevoteType, 1, 0, 1, t0)
			if err := h.client.SignVote(chain, v, true); err != nil {
				t.Fatal(err)
			}
			if !pk.VerifySignature(types.VoteSignBytes(chain, v), v.Signature) {
				t.Fatal("prevote signature does not verify")
			}
			if len(v.ExtensionSignature) != 0 || v.ValidatorIndex != 3 || len(v.ValidatorAddress) != 20 || string(v.Extension) != "ext" {
				t.Fatalf("prevote not echoed faithfully: %+v", v)
			}

			pc := newVote(types.PrecommitType, 1, 0, 1, t0)
			if err := h.client.SignVote(chain, pc, true); err != nil {
				t.Fatal(err)
			}
			if !pk.VerifySignature(types.VoteExtensionSignBytes(chain, pc), pc.ExtensionSignature) {
				t.Fatal("extension signature missing or invalid on a non-nil precommit")
			}

			// v1 nodes ask to skip extension signing when extensions are off.
			pc2 := newVote(types.PrecommitType, 2, 0, 1, t0)
			if err := h.client.SignVote(chain, pc2, false); err != nil {
				t.Fatal(err)
			}
			if len(pc2.ExtensionSignature) != 0 {
				t.Fatal("extension signed although skip_extension_signing was set")
			}
			nilPc := newVote(types.PrecommitType, 3, 0, 0, t0)
			nilPc.Extension = nil
			if err := h.client.SignVote(chain, nilPc, true); err != nil {
				t.Fatal(err)
			}
			if len(nilPc.ExtensionSignature) != 0 {
				t.Fatal("extension signature on a nil precommit halts CometBFT")
			}
		})
	}
}

func TestDoubleSignRefusedOnLiveConnection(t *testing.T) {
	forEachKeyType(t, testDoubleSignRefusedOnLiveConnection)
}

func testDoubleSignRefusedOnLiveConnection(t *testing.T, keyType string) {
	h := newHarness(t, "unix", privval.Auto, keyType)
	v := newVote(types.PrevoteType, 10, 0, 1, t0)
	if err := h.client.SignVote(chain, v, true); err != nil {
		t.Fatal(err)
	}
	// Timestamp-only repeat: the original signature and timestamp come back.
	again := newVote(types.PrevoteType, 10, 0, 1, t0.Add(3*time.Second))
	if err := h.client.SignVote(chain, again, true); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Signature, v.Signature) || !again.Timestamp.Equal(t0) {
		t.Fatalf("timestamp-only repeat: got sig %X ts %v, want the original %X ts %v", again.Signature, again.Timestamp, v.Signature, t0)
	}
	// Conflicting vote at the same height/round/step: code 2.
	conflict := newVote(types.PrevoteType, 10, 0, 2, t0)
	if code := remoteCode(t, h.client.SignVote(chain, conflict, true)); code != privval.CodeDoubleSign {
		t.Fatalf("conflicting vote: code %d, want %d", code, privval.CodeDoubleSign)
	}
	if !bytes.Contains([]byte(h.Logs.String()), []byte("level=ERROR msg=\"refused to sign\"")) {
		t.Errorf("no ERROR log for the refusal:\n%s", h.Logs)
	}
	// Regression: code 3.
	old := newVote(types.PrecommitType, 9, 0, 1, t0)
	if code := remoteCode(t, h.client.SignVote(chain, old, true)); code != privval.CodeRegression {
		t.Fatalf("regression: code %d, want %d", code, privval.CodeRegression)
	}
	// Wrong chain id: code 1.
	if code := remoteCode(t, h.client.SignVote("other-chain", newVote(types.PrevoteType, 11, 0, 1, t0), true)); code != privval.CodeChainID {
		t.Fatalf("wrong chain: code %d, want %d", code, privval.CodeChainID)
	}
	// SignBytes is refused.
	if _, err := h.client.SignBytes([]byte("anything")); remoteCode(t, err) != privval.CodeRefused {
		t.Fatalf("SignBytes: %v", err)
	}
	// The connection stayed up through all of it and signing goes on.
	if err := h.client.SignVote(chain, newVote(types.PrecommitType, 10, 0, 2, t0), true); err != nil {
		t.Fatalf("legal precommit for another block after a polka: %v", err)
	}
	if st := h.LastState(); st.Height != 10 || st.Step != signstate.StepPrecommit {
		t.Fatalf("last state %v", st.HRS())
	}
}
