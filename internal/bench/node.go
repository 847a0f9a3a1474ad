package bench

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	cmtproto "github.com/cometbft/cometbft/api/cometbft/types/v1"
	"github.com/cometbft/cometbft/crypto"
	cmtlog "github.com/cometbft/cometbft/libs/log"
	cmtprivval "github.com/cometbft/cometbft/privval"
	"github.com/cometbft/cometbft/types"
)

// RequestsPerHeight is what a validator signs per height when it proposes:
// a proposal, a prevote and a precommit.
const RequestsPerHeight = 3

// ExtensionSize is the length of the vote extension carried by each
// precommit, whose signature the signer must add.
const ExtensionSize = 32

// Request kinds, in the order they are sent at each height.
var kinds = [RequestsPerHeight]string{"proposal", "prevote", "precommit"}

// node is the validator side of a privval connection, made of CometBFT's
// own code: the SignerListenerEndpoint that a node with
// priv_validator_laddr runs, and the SignerClient that consensus calls.
type node struct {
	chainID  string
	endpoint *cmtprivval.SignerListenerEndpoint
	client   *cmtprivval.SignerClient
	pub      crypto.PubKey
}

// listenNode listens on the unix socket path, as a node does.
func listenNode(path, chainID string) (*node, error) {
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("node side: %w", err)
	}
	ep := cmtprivval.NewSignerListenerEndpoint(cmtlog.NewNopLogger(), cmtprivval.NewUnixListener(l))
	c, err := cmtprivval.NewSignerClient(ep, chainID)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("node side: %w", err)
	}
	return &node{chainID: chainID, endpoint: ep, client: c}, nil
}

// connect waits for the signer to dial in and asks for its public key, as
// a node does at start.
func (n *node) connect(timeout time.Duration) error {
	if err := n.client.WaitForConnection(timeout); err != nil {
		return fmt.Errorf("the signer did not connect within %s: %w", timeout, err)
	}
	pub, err := n.client.GetPubKey()
	if err != nil {
		return fmt.Errorf("GetPubKey: %w", err)
	}
	n.pub = pub
	return nil
}

func (n *node) close() {
	n.client.Close()
	n.endpoint.Stop()
}

// signed is one height's answers, kept to verify after the timed section.
type signed struct {
	proposal           *cmtproto.Proposal
	prevote, precommit *cmtproto.Vote
}

// signHeight sends a proposal, a prevote and a precommit (with a vote
// extension, whose signature is requested) for height h, one at a time,
// and returns each round trip's latency.
func (n *node) signHeight(h int64) ([RequestsPerHeight]time.Duration, signed, error) {
	var lat [RequestsPerHeight]time.Duration
	s := n.newHeight(h)
	for k := range RequestsPerHeight {
		start := time.Now()
		if err := n.send(&s, k); err != nil {
			return lat, s, err
		}
		lat[k] = time.Since(start)
	}
	return lat, s, nil
}

// newHeight makes the messages of height h.
func (n *node) newHeight(h int64) signed {
	bid := blockID(h)
	return signed{
		proposal:  &cmtproto.Proposal{Type: types.ProposalType, Height: h, PolRound: -1, BlockID: bid},
		prevote:   n.vote(types.PrevoteType, h, bid, nil),
		precommit: n.vote(types.PrecommitType, h, bid, extension(h)),
	}
}

// send timestamps request k of s (0 proposal, 1 prevote, 2 precommit) and
// has it signed.
func (n *node) send(s *signed, k int) error {
	now := time.Now().UTC()
	var err error
	switch k {
	case 0:
		s.proposal.Timestamp = now
		err = n.client.SignProposal(n.chainID, s.proposal)
	case 1:
		s.prevote.Timestamp = now
		err = n.client.SignVote(n.chainID, s.prevote, true)
	default:
		s.precommit.Timestamp = now
		err = n.client.SignVote(n.chainID, s.precommit, true)
	}
	if err != nil {
		return fmt.Errorf("height %d: %s: %w", s.proposal.Height, kinds[k], err)
	}
	return nil
}

func (n *node) vote(t cmtproto.SignedMsgType, h int64, bid cmtproto.BlockID, ext []byte) *cmtproto.Vote {
	return &cmtproto.Vote{Type: t, Height: h, BlockID: bid, ValidatorAddress: n.pub.Address(), Extension: ext}
}

// verify checks every signature of one height against the signer's key,
// as peers would: CometBFT's SignerClient does not.
func (n *node) verify(s signed) error {
	h := s.proposal.Height
	switch {
	case !n.pub.VerifySignature(types.ProposalSignBytes(n.chainID, s.proposal), s.proposal.Signature):
		return fmt.Errorf("height %d: the proposal signature does not verify", h)
	case !n.pub.VerifySignature(types.VoteSignBytes(n.chainID, s.prevote), s.prevote.Signature):
		return fmt.Errorf("height %d: the prevote signature does not verify", h)
	case len(s.prevote.ExtensionSignature) != 0:
		return fmt.Errorf("height %d: an extension signature on a prevote", h)
	case !n.pub.VerifySignature(types.VoteSignBytes(n.chainID, s.precommit), s.precommit.Signature):
		return fmt.Errorf("height %d: the precommit signature does not verify", h)
	case !n.pub.VerifySignature(types.VoteExtensionSignBytes(n.chainID, s.precommit), s.precommit.ExtensionSignature):
		return fmt.Errorf("height %d: the vote extension signature is missing or does not verify", h)
	case !bytes.Equal(s.precommit.Extension, extension(h)):
		return errors.New("the precommit's vote extension was not echoed")
	}
	return nil
}

// blockID is a distinct, well-formed block id per height.
func blockID(h int64) cmtproto.BlockID {
	hash := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("block"), uint64(h)))
	parts := sha256.Sum256(hash[:])
	return cmtproto.BlockID{Hash: hash[:], PartSetHeader: cmtproto.PartSetHeader{Total: 1, Hash: parts[:]}}
}

func extension(h int64) []byte {
	e := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("extension"), uint64(h)))
	return e[:ExtensionSize]
}
