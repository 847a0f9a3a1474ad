// Package signbytes encodes and decodes CometBFT's canonical sign bytes: the
// length-delimited CanonicalVote, CanonicalProposal and
// CanonicalVoteExtension that a validator signs.
//
// CometBFT's types package does the same, but importing it links the whole
// consensus type system (ABCI, pubsub, gRPC) into the enclave. This package
// needs only the protobuf definitions; its tests check it byte for byte
// against CometBFT's types package.
package signbytes

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	cmtproto "github.com/cometbft/cometbft/api/cometbft/types/v1"
	"github.com/cometbft/cometbft/libs/protoio"
	"github.com/cosmos/gogoproto/proto"
)

// HashSize is the size of a block or part-set hash (SHA-256).
const HashSize = 32

// ErrBlockID marks a block id CometBFT would refuse to canonicalize.
var ErrBlockID = errors.New("signbytes: invalid block id")

// ValidateBlockID checks what CometBFT's BlockIDFromProto checks: each hash
// is empty or HashSize bytes.
func ValidateBlockID(b *cmtproto.BlockID) error {
	if b == nil {
		return fmt.Errorf("%w: missing", ErrBlockID)
	}
	if n := len(b.Hash); n != 0 && n != HashSize {
		return fmt.Errorf("%w: hash is %d bytes, want %d", ErrBlockID, n, HashSize)
	}
	if n := len(b.PartSetHeader.Hash); n != 0 && n != HashSize {
		return fmt.Errorf("%w: part set hash is %d bytes, want %d", ErrBlockID, n, HashSize)
	}
	return nil
}

// Vote returns the bytes a prevote or precommit signature covers.
func Vote(chainID string, v *cmtproto.Vote) ([]byte, error) {
	bid, err := canonicalBlockID(&v.BlockID)
	if err != nil {
		return nil, err
	}
	return protoio.MarshalDelimited(&cmtproto.CanonicalVote{
		Type:      v.Type,
		Height:    v.Height,
		Round:     int64(v.Round),
		BlockID:   bid,
		Timestamp: v.Timestamp,
		ChainID:   chainID,
	})
}

// VoteExtension returns the bytes a vote extension signature covers.
func VoteExtension(chainID string, v *cmtproto.Vote) ([]byte, error) {
	return protoio.MarshalDelimited(&cmtproto.CanonicalVoteExtension{
		Extension: v.Extension,
		Height:    v.Height,
		Round:     int64(v.Round),
		ChainId:   chainID,
	})
}

// Proposal returns the bytes a proposal signature covers.
func Proposal(chainID string, p *cmtproto.Proposal) ([]byte, error) {
	bid, err := canonicalBlockID(&p.BlockID)
	if err != nil {
		return nil, err
	}
	return protoio.MarshalDelimited(&cmtproto.CanonicalProposal{
		Type:      cmtproto.ProposalType,
		Height:    p.Height,
		Round:     int64(p.Round),
		POLRound:  int64(p.PolRound),
		BlockID:   bid,
		Timestamp: p.Timestamp,
		ChainID:   chainID,
	})
}

// canonicalBlockID is nil for the nil block (no hash, empty part set), as
// in CometBFT.
func canonicalBlockID(b *cmtproto.BlockID) (*cmtproto.CanonicalBlockID, error) {
	if err := ValidateBlockID(b); err != nil {
		return nil, err
	}
	if len(b.Hash) == 0 && b.PartSetHeader.Total == 0 && len(b.PartSetHeader.Hash) == 0 {
		return nil, nil
	}
	return &cmtproto.CanonicalBlockID{Hash: b.Hash, PartSetHeader: cmtproto.CanonicalPartSetHeader(b.PartSetHeader)}, nil
}

// Message is what the double-sign checks read back from signed sign bytes.
type Message struct {
	ChainID   string
	BlockID   *cmtproto.CanonicalBlockID // nil for a vote for no block
	Timestamp time.Time
	untimed   []byte // the message re-encoded with a zero timestamp
}

// Decode reads sign bytes made by Proposal (proposal true) or Vote.
func Decode(proposal bool, b []byte) (Message, error) {
	var m Message
	var msg proto.Message
	if proposal {
		var p cmtproto.CanonicalProposal
		if err := protoio.UnmarshalDelimited(b, &p); err != nil {
			return Message{}, fmt.Errorf("signbytes: not a canonical proposal: %w", err)
		}
		m = Message{ChainID: p.ChainID, BlockID: p.BlockID, Timestamp: p.Timestamp}
		p.Timestamp = time.Time{}
		msg = &p
	} else {
		var v cmtproto.CanonicalVote
		if err := protoio.UnmarshalDelimited(b, &v); err != nil {
			return Message{}, fmt.Errorf("signbytes: not a canonical vote: %w", err)
		}
		m = Message{ChainID: v.ChainID, BlockID: v.BlockID, Timestamp: v.Timestamp}
		v.Timestamp = time.Time{}
		msg = &v
	}
	untimed, err := proto.Marshal(msg)
	if err != nil {
		return Message{}, fmt.Errorf("signbytes: %w", err)
	}
	m.untimed = untimed
	return m, nil
}

// SameButTimestamp reports whether m and o are the same message once their
// timestamps are ignored: CometBFT re-signs such a request with the
// timestamp it signed first.
func (m Message) SameButTimestamp(o Message) bool {
	return m.untimed != nil && bytes.Equal(m.untimed, o.untimed)
}
