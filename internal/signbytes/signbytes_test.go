package signbytes_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	cmtproto "github.com/cometbft/cometbft/api/cometbft/types/v1"
	"github.com/cometbft/cometbft/types"

	"github.com/tmkms-nitro/tmkms-nitro/internal/signbytes"
)

var (
	hashA = bytes.Repeat([]byte{0xaa}, 32)
	hashB = bytes.Repeat([]byte{0xbb}, 32)
	ts    = time.Date(2026, 12, 5, 21, 0, 0, 123456789, time.UTC)
)

var blockIDs = map[string]cmtproto.BlockID{
	"nil block":           {},
	"block":               {Hash: hashA, PartSetHeader: cmtproto.PartSetHeader{Total: 3, Hash: hashB}},
	"hash only":           {Hash: hashA},
	"part set only":       {PartSetHeader: cmtproto.PartSetHeader{Total: 1, Hash: hashB}},
	"part set total only": {PartSetHeader: cmtproto.PartSetHeader{Total: 1}},
}

// The reference is CometBFT's own types package: the bytes must be identical
// or nodes would reject the signatures.
func TestMatchesCometBFT(t *testing.T) {
	for name, bid := range blockIDs {
		for _, typ := range []cmtproto.SignedMsgType{cmtproto.PrevoteType, cmtproto.PrecommitType} {
			v := &cmtproto.Vote{Type: typ, Height: 1 << 40, Round: 7, BlockID: bid, Timestamp: ts, Extension: []byte("ext")}
			got, err := signbytes.Vote("chain-A", v)
			if err != nil {
				t.Fatalf("%s: Vote: %v", name, err)
			}
			if want := types.VoteSignBytes("chain-A", v); !bytes.Equal(got, want) {
				t.Errorf("%s %v: Vote = %x, CometBFT %x", name, typ, got, want)
			}
			got, err = signbytes.VoteExtension("chain-A", v)
			if err != nil {
				t.Fatalf("%s: VoteExtension: %v", name, err)
			}
			if want := types.VoteExtensionSignBytes("chain-A", v); !bytes.Equal(got, want) {
				t.Errorf("%s: VoteExtension = %x, CometBFT %x", name, got, want)
			}
		}
		p := &cmtproto.Proposal{Type: cmtproto.ProposalType, Height: 9, Round: 2, PolRound: -1, BlockID: bid, Timestamp: ts}
		got, err := signbytes.Proposal("chain-B", p)
		if err != nil {
			t.Fatalf("%s: Proposal: %v", name, err)
		}
		if want := types.ProposalSignBytes("chain-B", p); !bytes.Equal(got, want) {
			t.Errorf("%s: Proposal = %x, CometBFT %x", name, got, want)
		}
	}
}

func TestInvalidBlockID(t *testing.T) {
	for name, bid := range map[string]cmtproto.BlockID{
		"short hash":          {Hash: hashA[:31]},
		"long part set hash":  {Hash: hashA, PartSetHeader: cmtproto.PartSetHeader{Total: 1, Hash: append(hashB, 0)}},
		"part set hash short": {PartSetHeader: cmtproto.PartSetHeader{Hash: []byte{1}}},
	} {
		if _, err := types.BlockIDFromProto(&bid); err == nil {
			t.Fatalf("%s: CometBFT accepts it; the test case is wrong", name)
		}
		if _, err := signbytes.Vote("c", &cmtproto.Vote{Type: cmtproto.PrevoteType, Height: 1, BlockID: bid}); !errors.Is(err, signbytes.ErrBlockID) {
			t.Errorf("%s: Vote error = %v, want ErrBlockID", name, err)
		}
		if _, err := signbytes.Proposal("c", &cmtproto.Proposal{Height: 1, BlockID: bid}); !errors.Is(err, signbytes.ErrBlockID) {
			t.Errorf("%s: Proposal error = %v, want ErrBlockID", name, err)
		}
	}
}

func TestDecode(t *testing.T) {
	for name, bid := range blockIDs {
		v := &cmtproto.Vote{Type: cmtproto.PrecommitType, Height: 5, Round: 1, BlockID: bid, Timestamp: ts}
		sb, err := signbytes.Vote("chain-A", v)
		if err != nil {
			t.Fatal(err)
		}
		m, err := signbytes.Decode(false, sb)
		if err != nil {
			t.Fatalf("%s: Decode: %v", name, err)
		}
		if m.ChainID != "chain-A" || !m.Timestamp.Equal(ts) {
			t.Errorf("%s: Decode = %q %v", name, m.ChainID, m.Timestamp)
		}
		if isNil := len(bid.Hash) == 0 && bid.PartSetHeader.Total == 0 && len(bid.PartSetHeader.Hash) == 0; isNil != (m.BlockID == nil) {
			t.Errorf("%s: decoded block id %v", name, m.BlockID)
		}

		later := *v
		later.Timestamp = ts.Add(time.Second)
		other := *v
		other.Round = 2
		for _, c := range []struct {
			v    *cmtproto.Vote
			same bool
		}{{&later, true}, {&other, false}} {
			sb2, _ := signbytes.Vote("chain-A", c.v)
			m2, err := signbytes.Decode(false, sb2)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.SameButTimestamp(m2); got != c.same {
				t.Errorf("%s: SameButTimestamp(round %d, %v) = %v", name, c.v.Round, c.v.Timestamp, got)
			}
		}
	}
	if _, err := signbytes.Decode(true, []byte{0x05, 0xff}); err == nil {
		t.Error("Decode accepted a truncated message")
	}
	if (signbytes.Message{}).SameButTimestamp(signbytes.Message{}) {
		t.Error("two undecoded messages compare equal")
	}
}

// FuzzVote checks random votes and proposals against CometBFT.
func FuzzVote(f *testing.F) {
	f.Add(int32(1), int64(1), int32(0), int32(-1), hashA, uint32(1), hashB, int64(0), "chain", []byte("x"))
	f.Add(int32(2), int64(7), int32(3), int32(1), []byte{}, uint32(0), []byte{}, int64(1<<40), "", []byte{})
	f.Fuzz(func(t *testing.T, typ int32, height int64, round, polRound int32, hash []byte, total uint32, partsHash []byte, nanos int64, chainID string, ext []byte) {
		bid := cmtproto.BlockID{Hash: hash, PartSetHeader: cmtproto.PartSetHeader{Total: total, Hash: partsHash}}
		stamp := time.Unix(0, nanos).UTC()
		v := &cmtproto.Vote{Type: cmtproto.SignedMsgType(typ), Height: height, Round: round, BlockID: bid, Timestamp: stamp, Extension: ext}
		p := &cmtproto.Proposal{Type: cmtproto.ProposalType, Height: height, Round: round, PolRound: polRound, BlockID: bid, Timestamp: stamp}
		vb, verr := signbytes.Vote(chainID, v)
		pb, perr := signbytes.Proposal(chainID, p)
		if _, err := types.BlockIDFromProto(&bid); err != nil {
			if verr == nil || perr == nil {
				t.Fatalf("CometBFT refuses block id (%v) but signbytes does not", err)
			}
			return
		}
		if verr != nil || perr != nil {
			t.Fatalf("valid block id refused: %v, %v", verr, perr)
		}
		if want := types.VoteSignBytes(chainID, v); !bytes.Equal(vb, want) {
			t.Fatalf("Vote = %x, CometBFT %x", vb, want)
		}
		if want := types.ProposalSignBytes(chainID, p); !bytes.Equal(pb, want) {
			t.Fatalf("Proposal = %x, CometBFT %x", pb, want)
		}
		m, err := signbytes.Decode(false, vb)
		if err != nil || m.ChainID != chainID {
			t.Fatalf("Decode(Vote) = %q, %v", m.ChainID, err)
		}
	})
}

// FuzzDecode: no input panics, and what decodes compares equal to itself.
func FuzzDecode(f *testing.F) {
	sb, _ := signbytes.Vote("c", &cmtproto.Vote{Type: cmtproto.PrevoteType, Height: 1, BlockID: blockIDs["block"], Timestamp: ts})
	f.Add(true, sb)
	f.Add(false, sb)
	f.Fuzz(func(t *testing.T, proposal bool, b []byte) {
		m, err := signbytes.Decode(proposal, b)
		if err == nil && !m.SameButTimestamp(m) {
			t.Fatal("decoded message differs from itself")
		}
	})
}
