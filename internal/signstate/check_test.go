package signstate

import (
	"bytes"
	"errors"
	"testing"
	"time"

	cmtproto "github.com/cometbft/cometbft/api/cometbft/types/v1"
	"github.com/cometbft/cometbft/types"
)

const chain = "test-chain"

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 123456789, time.UTC)

func bid(b byte) cmtproto.BlockID {
	if b == 0 {
		return cmtproto.BlockID{}
	}
	return cmtproto.BlockID{Hash: bytes.Repeat([]byte{b}, 32), PartSetHeader: cmtproto.PartSetHeader{Total: 1, Hash: bytes.Repeat([]byte{b + 1}, 32)}}
}

// vote builds the request and the state it would leave for a vote.
func vote(step Step, h int64, r int32, block byte, ts time.Time) (Request, State) {
	typ := types.PrevoteType
	if step == StepPrecommit {
		typ = types.PrecommitType
	}
	v := &cmtproto.Vote{Type: typ, Height: h, Round: r, BlockID: bid(block), Timestamp: ts}
	return mk(HRS{h, r, step}, v.BlockID, types.VoteSignBytes(chain, v))
}

func proposal(h int64, r, pol int32, block byte, ts time.Time) (Request, State) {
	p := &cmtproto.Proposal{Type: types.ProposalType, Height: h, Round: r, PolRound: pol, BlockID: bid(block), Timestamp: ts}
	return mk(HRS{h, r, StepPropose}, p.BlockID, types.ProposalSignBytes(chain, p))
}

func mk(hrs HRS, b cmtproto.BlockID, sb []byte) (Request, State) {
	id := BlockID{Hash: b.Hash, PartsTotal: b.PartSetHeader.Total, PartsHash: b.PartSetHeader.Hash}
	return Request{HRS: hrs, BlockID: id, SignBytes: sb},
		State{Height: hrs.Height, Round: hrs.Round, Step: hrs.Step, BlockID: id, SignBytes: sb, Signature: []byte("sig-" + hrs.String())}
}

func TestCheck(t *testing.T) {
	later := t0.Add(time.Second)
	_, prevoteA := vote(StepPrevote, 5, 1, 0xA, t0)
	_, precommitA := vote(StepPrecommit, 5, 1, 0xA, t0)
	_, propA := proposal(5, 1, -1, 0xA, t0)
	_, nilPrevote := vote(StepPrevote, 5, 1, 0, t0)
	tests := []struct {
		name  string
		last  State
		req   Request
		want  error // nil: allowed
		reuse bool
	}{
		{"fresh state signs anything", State{}, first(vote(StepPrevote, 1, 0, 0xA, t0)), nil, false},
		{"higher height", prevoteA, first(vote(StepPrevote, 6, 0, 0xB, t0)), nil, false},
		{"higher round, other block", prevoteA, first(vote(StepPrevote, 5, 2, 0xB, t0)), nil, false},
		{"proposal then prevote same round", propA, first(vote(StepPrevote, 5, 1, 0xA, t0)), nil, false},
		{"prevote A then precommit B (polka for B): legal", prevoteA, first(vote(StepPrecommit, 5, 1, 0xB, t0)), nil, false},
		{"prevote nil then precommit A", nilPrevote, first(vote(StepPrecommit, 5, 1, 0xA, t0)), nil, false},
		{"proposal A then prevote B", propA, first(vote(StepPrevote, 5, 1, 0xB, t0)), nil, false},
		{"identical repeat reuses", prevoteA, first(vote(StepPrevote, 5, 1, 0xA, t0)), nil, true},
		{"timestamp-only repeat reuses", prevoteA, first(vote(StepPrevote, 5, 1, 0xA, later)), nil, true},
		{"timestamp-only proposal repeat reuses", propA, first(proposal(5, 1, -1, 0xA, later)), nil, true},
		{"other block same hrs", prevoteA, first(vote(StepPrevote, 5, 1, 0xB, t0)), ErrDoubleSign, false},
		{"nil after block same hrs", prevoteA, first(vote(StepPrevote, 5, 1, 0, t0)), ErrDoubleSign, false},
		{"block after nil same hrs", nilPrevote, first(vote(StepPrevote, 5, 1, 0xA, t0)), ErrDoubleSign, false},
		{"other block precommit", precommitA, first(vote(StepPrecommit, 5, 1, 0xB, later)), ErrDoubleSign, false},
		{"proposal other pol round", propA, first(proposal(5, 1, 0, 0xA, t0)), ErrDoubleSign, false},
		{"height regression", prevoteA, first(vote(StepPrecommit, 4, 9, 0xA, t0)), ErrHeightRegression, false},
		{"round regression", prevoteA, first(vote(StepPrecommit, 5, 0, 0xA, t0)), ErrRoundRegression, false},
		{"step regression prevote after precommit", precommitA, first(vote(StepPrevote, 5, 1, 0xA, t0)), ErrStepRegression, false},
		{"step regression proposal after prevote", prevoteA, first(proposal(5, 1, -1, 0xA, t0)), ErrStepRegression, false},
		{"imported state, same block re-signs", imported(prevoteA), first(vote(StepPrevote, 5, 1, 0xA, later)), nil, false},
		{"imported state, other block refused", imported(prevoteA), first(vote(StepPrevote, 5, 1, 0xB, t0)), ErrDoubleSign, false},
		{"imported nil state, block refused", imported(nilPrevote), first(vote(StepPrevote, 5, 1, 0xA, t0)), ErrDoubleSign, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Check(tt.last, tt.req)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Check: err = %v, want %v", err, tt.want)
			}
			if err != nil && !IsRefusal(err) {
				t.Errorf("IsRefusal(%v) = false", err)
			}
			if v.Reuse != tt.reuse {
				t.Fatalf("Reuse = %v, want %v", v.Reuse, tt.reuse)
			}
			if v.Reuse {
				if !bytes.Equal(v.Signature, tt.last.Signature) {
					t.Errorf("reused signature %q, want %q", v.Signature, tt.last.Signature)
				}
				if !v.Timestamp.Equal(t0) {
					t.Errorf("reused timestamp %v, want the stored %v", v.Timestamp, t0)
				}
			}
		})
	}
}

func first(r Request, _ State) Request { return r }

func imported(s State) State {
	s.SignBytes, s.Signature = nil, nil
	return s
}

func TestCheckCorruptStoredSignBytes(t *testing.T) {
	req, last := vote(StepPrevote, 5, 1, 0xA, t0)
	last.SignBytes = []byte{0xff, 0xff}
	if _, err := Check(last, req); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
}
