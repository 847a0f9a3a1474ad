package signstate

import (
	"bytes"
	"fmt"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/signbytes"
)

// Request is a message the caller wants to sign: its position, the block it
// names, and its canonical sign bytes (length-delimited CanonicalVote or
// CanonicalProposal).
type Request struct {
	HRS
	BlockID   BlockID
	SignBytes []byte
}

// State is the state that records req signed with sig (nil: a decision
// not signed yet).
func (req Request) State(sig []byte) State {
	return State{Height: req.Height, Round: req.Round, Step: req.Step, BlockID: req.BlockID, SignBytes: req.SignBytes, Signature: sig}
}

// Verdict says how to answer a request that Check allowed.
type Verdict struct {
	// Reuse is set when the request repeats the last signed message: the
	// caller must answer with Signature and Timestamp rather than sign again,
	// so that no second signature ever exists for one position.
	Reuse     bool
	Signature []byte
	Timestamp time.Time
}

// Check decides whether req may be signed after last. It returns an error
// wrapping one of the refusal sentinels when it may not.
func Check(last State, req Request) (Verdict, error) {
	switch c := req.HRS.Compare(last.HRS()); {
	case c > 0:
		return Verdict{}, nil
	case c < 0:
		return Verdict{}, regression(last.HRS(), req.HRS)
	}
	if len(last.SignBytes) == 0 || len(last.Signature) == 0 {
		// Imported state without the signed message: the only safe repeat
		// is one for the same block, which is not equivocation.
		if req.BlockID.Equal(last.BlockID) {
			return Verdict{}, nil
		}
		return Verdict{}, conflict(req.HRS, "a different block than the one already signed")
	}
	ts, same, err := sameButTimestamp(req.Step, last.SignBytes, req.SignBytes)
	if err != nil {
		return Verdict{}, err
	}
	if !same {
		return Verdict{}, conflict(req.HRS, "conflicting data")
	}
	return Verdict{Reuse: true, Signature: bytes.Clone(last.Signature), Timestamp: ts}, nil
}

func regression(last, req HRS) error {
	switch {
	case req.Height < last.Height:
		return fmt.Errorf("%w: got height %d, last signed %s", ErrHeightRegression, req.Height, last)
	case req.Round < last.Round:
		return fmt.Errorf("%w: got round %d at height %d, last signed %s", ErrRoundRegression, req.Round, req.Height, last)
	default:
		return fmt.Errorf("%w: got %s, last signed %s", ErrStepRegression, req, last)
	}
}

func conflict(at HRS, what string) error {
	return fmt.Errorf("%w at %s: %s", ErrDoubleSign, at, what)
}

// sameButTimestamp reports whether two sign bytes of the given step are
// equal once their timestamps are set equal, and returns the timestamp of
// last.
func sameButTimestamp(step Step, last, next []byte) (time.Time, bool, error) {
	a, err := signbytes.Decode(step == StepPropose, last)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("%w: stored sign bytes do not decode: %v", ErrCorrupt, err)
	}
	b, err := signbytes.Decode(step == StepPropose, next)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("signstate: request sign bytes do not decode: %w", err)
	}
	return a.Timestamp, a.SameButTimestamp(b), nil
}
