package signer

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	cmtproto "github.com/cometbft/cometbft/api/cometbft/types/v1"

	"github.com/tmkms-nitro/tmkms-nitro/internal/ha"
	"github.com/tmkms-nitro/tmkms-nitro/internal/ha/hatest"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signbytes"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

const clusterChain = "c"

// instances are two signers holding the same key, each with its guard on
// one shared store, as two enclaves of one validator are.
type instances struct {
	store *hatest.Store
	key   ha.Key
	a, b  *Signer
}

func newInstances(t *testing.T, key Sealable) *instances {
	t.Helper()
	hk, err := ha.DeriveKey(key.Seed(), clusterChain)
	if err != nil {
		t.Fatal(err)
	}
	s := &hatest.Store{}
	signer := func(name string) *Signer {
		return New(key, clusterChain, signstate.State{}, &memStore{}, Options{Cluster: ha.NewGuard(s, hk, name, nil)})
	}
	return &instances{store: s, key: hk, a: signer("a"), b: signer("b")}
}

// otherBlock is v for another block at the same position.
func otherBlock(v *cmtproto.Vote) *cmtproto.Vote {
	v.BlockID.Hash = bytes.Repeat([]byte{7}, 32)
	return v
}

// later is v with a later timestamp: the same message to the guard.
func later(v *cmtproto.Vote) *cmtproto.Vote {
	v.Timestamp = v.Timestamp.Add(time.Second)
	return v
}

func mustSign(t *testing.T, s *Signer, v *cmtproto.Vote) Signed {
	t.Helper()
	out, err := s.SignVote(context.Background(), clusterChain, v, false)
	if err != nil || len(out.Signature) == 0 {
		t.Fatalf("SignVote at height %d: %v", v.Height, err)
	}
	return out
}

func mustRefuse(t *testing.T, s *Signer, v *cmtproto.Vote, want error) {
	t.Helper()
	out, err := s.SignVote(context.Background(), clusterChain, v, false)
	if !errors.Is(err, want) || out.Signature != nil {
		t.Fatalf("SignVote at height %d: signature %x, err = %v; want no signature and %v", v.Height, out.Signature, err, want)
	}
}

// TestCommitBeforeSigning runs two instances through the cluster guard on
// the in-memory store with each fault it can show: nothing is signed that
// the cluster did not commit, and nothing is signed at a position the
// cluster holds another message for.
func TestCommitBeforeSigning(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, in *instances)
	}{
		{"the winner's message gets the winner's signature", func(t *testing.T, in *instances) {
			// The cluster stores no signature: b signs a's message itself,
			// and only deterministic signing (RFC 6979 for secp256k1)
			// makes the two signatures one.
			sig := mustSign(t, in.a, vote(1))
			out := mustSign(t, in.b, later(vote(1)))
			if !bytes.Equal(out.Signature, sig.Signature) || !out.Reused || !out.Timestamp.Equal(sig.Timestamp) {
				t.Fatalf("b repeating a's message: %+v, want a's signature and timestamp, reused", out)
			}
		}},
		{"another message at a won position is refused", func(t *testing.T, in *instances) {
			mustSign(t, in.a, vote(1))
			mustRefuse(t, in.b, otherBlock(vote(1)), signstate.ErrDoubleSign)
			if got := in.b.LastState(); got.Height != 1 || got.Signature == nil {
				t.Fatalf("b's guard after losing: %v, want a's decision with its signature", got.HRS())
			}
		}},
		{"a position below the cluster's is refused", func(t *testing.T, in *instances) {
			mustSign(t, in.a, vote(5))
			mustRefuse(t, in.b, vote(3), signstate.ErrHeightRegression)
		}},
		{"no quorum", func(t *testing.T, in *instances) {
			in.store.Inject(hatest.NoQuorum)
			mustRefuse(t, in.a, vote(1), ErrCluster)
			if got := in.a.LastState(); got.Height != 0 {
				t.Fatalf("the guard moved to %v without a commit", got.HRS())
			}
			mustSign(t, in.a, vote(1))
		}},
		{"lost answer", func(t *testing.T, in *instances) {
			mustSign(t, in.a, vote(1))
			in.store.Inject(hatest.LostAnswer)
			mustRefuse(t, in.a, vote(2), ErrCluster)
			// The swap landed: b may not sign another block there, and a
			// may sign the one it committed.
			mustRefuse(t, in.b, otherBlock(vote(2)), signstate.ErrDoubleSign)
			mustSign(t, in.a, vote(2))
		}},
		{"stale revision", func(t *testing.T, in *instances) {
			mustSign(t, in.a, vote(1))
			in.store.Inject(hatest.StaleRevision)
			mustSign(t, in.a, vote(2))
		}},
		{"forged record at the position", func(t *testing.T, in *instances) {
			// A record for another block at height 4, written without the
			// key: signing its block (or any) would be signing for whoever
			// has the store's credentials.
			forger, _ := ha.DeriveKey(bytes.Repeat([]byte{4}, 32), clusterChain)
			v := otherBlock(vote(4))
			sb, err := signbytes.Vote(clusterChain, v)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := forger.Seal(signstate.State{Height: 4, Step: signstate.StepPrevote, SignBytes: sb}, "b")
			if err != nil {
				t.Fatal(err)
			}
			in.store.Inject(hatest.Forged(rec))
			mustRefuse(t, in.a, v, ha.ErrForged)
			in.store.Inject(hatest.Forged(rec))
			mustRefuse(t, in.a, vote(4), ha.ErrForged)
		}},
		{"a won decision is persisted before its signature is released", func(t *testing.T, in *instances) {
			mustSign(t, in.a, vote(1))
			store := in.b.store.(*memStore)
			store.fail = errors.New("disk full")
			mustRefuse(t, in.b, later(vote(1)), ErrPersist)
			store.fail = nil
			mustSign(t, in.b, later(vote(1)))
		}},
	}
	forEachKeyType(t, 3, func(t *testing.T, key Sealable) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) { tt.run(t, newInstances(t, key)) })
		}
	})
}

// belowCluster answers every commit with a decision it holds below the
// request, which the real guard never does: a broken or forged cluster.
type belowCluster struct{ st signstate.State }

func (c belowCluster) Commit(context.Context, signstate.State) (signstate.State, string, error) {
	return c.st, "forged", nil
}

// A cluster answer below the request is refused and never adopted: had it
// replaced the guard, a payload conflicting with what this signer signed
// at that position would be answered as a repeat, with a fresh signature.
func TestClusterAnswerBelowRequest(t *testing.T) {
	forEachKeyType(t, 3, testClusterAnswerBelowRequest)
}

func testClusterAnswerBelowRequest(t *testing.T, key Sealable) {
	cluster := &belowCluster{}
	s := New(key, clusterChain, signstate.State{}, &memStore{}, Options{Cluster: cluster})
	// The cluster agrees with the first prevote (it returns the request).
	a := vote(5)
	sbA, err := signbytes.Vote(clusterChain, a)
	if err != nil {
		t.Fatal(err)
	}
	cluster.st = signstate.State{Height: 5, Step: signstate.StepPrevote, SignBytes: sbA,
		BlockID: signstate.BlockID{Hash: a.BlockID.Hash, PartsTotal: a.BlockID.PartSetHeader.Total, PartsHash: a.BlockID.PartSetHeader.Hash}}
	mustSign(t, s, a)

	// Then it answers a precommit with a prevote for another block at 5/0.
	b := otherBlock(vote(5))
	sbB, err := signbytes.Vote(clusterChain, b)
	if err != nil {
		t.Fatal(err)
	}
	cluster.st = signstate.State{Height: 5, Step: signstate.StepPrevote, SignBytes: sbB,
		BlockID: signstate.BlockID{Hash: b.BlockID.Hash, PartsTotal: b.BlockID.PartSetHeader.Total, PartsHash: b.BlockID.PartSetHeader.Hash}}
	pc := vote(5)
	pc.Type = cmtproto.PrecommitType
	mustRefuse(t, s, pc, ErrCluster)
	// The prevote for the other block stays a double sign.
	mustRefuse(t, s, otherBlock(vote(5)), signstate.ErrDoubleSign)
}
