package bench

import (
	"context"
	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	"path/filepath"
	"testing"
	"time"

	pvproto "github.com/cometbft/cometbft/api/cometbft/privval/v1"
	cmtproto "github.com/cometbft/cometbft/api/cometbft/types/v1"

	"github.com/tmkms-nitro/tmkms-nitro/internal/privval"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// benchRoundTrips measures one sign request per iteration, through the
// node's privval client, cycling proposal, prevote, precommit.
func benchRoundTrips(b *testing.B, s *subject) {
	b.Cleanup(s.stop)
	b.ReportAllocs()
	var cur signed
	b.ResetTimer()
	for i := range b.N {
		k := i % RequestsPerHeight
		if k == 0 {
			cur = s.node.newHeight(s.next)
			s.next++
		}
		if err := s.node.send(&cur, k); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignerCore is configuration (b): the privval round trip over a
// unix socket to our handler, signer and state file (fdatasync per
// signature), as the node sees it.
func BenchmarkSignerCore(b *testing.B) {
	s, err := startCore(context.Background(), b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	benchRoundTrips(b, s)
}

// BenchmarkFilePV is configuration (a), the baseline, for comparison with
// BenchmarkSignerCore.
func BenchmarkFilePV(b *testing.B) {
	s, err := startFilePV(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	benchRoundTrips(b, s)
}

// BenchmarkSignerDirect calls the signer in process with its state file:
// guard, signature and fdatasync, without privval encoding or a socket.
func BenchmarkSignerDirect(b *testing.B) {
	store, err := signstate.Open(filepath.Join(b.TempDir(), "state"), signstate.Options{AllowMissing: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	benchSigner(b, store)
}

// BenchmarkHandle measures the privval handler's decode, guard, signature
// and encode with a store that keeps nothing: the CPU and allocation cost
// of a request without any I/O.
func BenchmarkHandle(b *testing.B) {
	key, err := signer.GenerateEd25519()
	if err != nil {
		b.Fatal(err)
	}
	h := privval.NewHandler(signer.New(key, chainID, signstate.State{}, discardStore{}, signer.Options{}), privval.Auto, nil)
	n := &node{chainID: chainID, pub: cmted25519.PubKey(key.PubKey().Bytes)}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		req := encodeRequest(b, n, int64(i/RequestsPerHeight+1), i%RequestsPerHeight)
		if _, err := h.Handle(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStateSave is signstate.File.Save alone: one 1 KiB write and one
// fdatasync.
func BenchmarkStateSave(b *testing.B) {
	store, err := signstate.Open(filepath.Join(b.TempDir(), "state"), signstate.Options{AllowMissing: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		bid := blockID(int64(i + 1))
		st := signstate.State{Height: int64(i + 1), Step: signstate.StepPropose, SignBytes: make([]byte, 120), Signature: make([]byte, 64),
			BlockID: signstate.BlockID{Hash: bid.Hash, PartsTotal: 1, PartsHash: bid.PartSetHeader.Hash}}
		if err := store.Save(ctx, st); err != nil {
			b.Fatal(err)
		}
	}
}

func benchSigner(b *testing.B, store signer.Store) {
	key, err := signer.GenerateEd25519()
	if err != nil {
		b.Fatal(err)
	}
	s := signer.New(key, chainID, signstate.State{}, store, signer.Options{})
	n := &node{chainID: chainID, pub: cmted25519.PubKey(key.PubKey().Bytes)}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		h := n.newHeight(int64(i/RequestsPerHeight + 1))
		var err error
		switch k := i % RequestsPerHeight; k {
		case 0:
			h.proposal.Timestamp = time.Now()
			_, err = s.SignProposal(ctx, chainID, h.proposal)
		case 1:
			h.prevote.Timestamp = time.Now()
			_, err = s.SignVote(ctx, chainID, h.prevote, true)
		default:
			h.precommit.Timestamp = time.Now()
			_, err = s.SignVote(ctx, chainID, h.precommit, true)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// encodeRequest is request k of height h as the node encodes it.
func encodeRequest(b *testing.B, n *node, h int64, k int) []byte {
	s := n.newHeight(h)
	now := time.Now()
	var m pvproto.Message
	switch k {
	case 0:
		s.proposal.Timestamp = now
		m.Sum = &pvproto.Message_SignProposalRequest{SignProposalRequest: &pvproto.SignProposalRequest{Proposal: s.proposal, ChainId: chainID}}
	default:
		v := map[bool]*cmtproto.Vote{true: s.prevote, false: s.precommit}[k == 1]
		v.Timestamp = now
		m.Sum = &pvproto.Message_SignVoteRequest{SignVoteRequest: &pvproto.SignVoteRequest{Vote: v, ChainId: chainID}}
	}
	body, err := m.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// discardStore persists nothing, to isolate CPU costs.
type discardStore struct{}

func (discardStore) Save(context.Context, signstate.State) error { return nil }
