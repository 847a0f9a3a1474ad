// Package signstate is the double-sign guard: it decides whether a consensus
// message may be signed given the last message signed, and it persists that
// decision durably.
//
// The rule is CometBFT FilePV's: height, round and step never go backwards,
// and at one height/round/step only the message already signed may be signed
// again (a request that differs from it only in its timestamp gets the stored
// signature and timestamp back). Everything else at one height/round/step is
// refused as a double sign. A higher step in the same round is always allowed,
// whatever block it names, because honest consensus needs it: a validator that
// prevoted A may precommit B in the same round after seeing a polka for B.
// That is not equivocation (evidence needs two votes of one type at one
// height and round), and refusing it, as tmkms does, costs precommits.
//
// The package never lowers a state: a Store must refuse to persist a state
// below the one it holds, and callers must persist before they release.
package signstate

import (
	"bytes"
	"errors"
	"fmt"
)

// Step orders the messages of one round. The values are FilePV's.
type Step int8

const (
	StepNone      Step = 0
	StepPropose   Step = 1
	StepPrevote   Step = 2
	StepPrecommit Step = 3
)

func (s Step) String() string {
	switch s {
	case StepNone:
		return "none"
	case StepPropose:
		return "proposal"
	case StepPrevote:
		return "prevote"
	case StepPrecommit:
		return "precommit"
	}
	return fmt.Sprintf("step(%d)", int8(s))
}

// BlockID identifies the block a message names. The zero value is nil (a
// vote for no block).
type BlockID struct {
	Hash       []byte
	PartsTotal uint32
	PartsHash  []byte
}

// IsNil reports whether id names no block.
func (id BlockID) IsNil() bool {
	return len(id.Hash) == 0 && id.PartsTotal == 0 && len(id.PartsHash) == 0
}

// Equal reports whether two block ids are the same.
func (id BlockID) Equal(o BlockID) bool {
	return bytes.Equal(id.Hash, o.Hash) && id.PartsTotal == o.PartsTotal && bytes.Equal(id.PartsHash, o.PartsHash)
}

// State is the last message signed. SignBytes and Signature are empty when
// the state was imported from a format that does not keep them (tmkms-light);
// BlockID then stands in for the comparison at the same height/round/step.
type State struct {
	Height    int64
	Round     int32
	Step      Step
	BlockID   BlockID
	SignBytes []byte
	Signature []byte
}

// HRS is a height/round/step position.
type HRS struct {
	Height int64
	Round  int32
	Step   Step
}

func (h HRS) String() string { return fmt.Sprintf("%d/%d/%s", h.Height, h.Round, h.Step) }

// Compare orders positions: -1 if h is before o, 0 if equal, +1 if after.
func (h HRS) Compare(o HRS) int {
	switch {
	case h.Height != o.Height:
		return cmp(h.Height, o.Height)
	case h.Round != o.Round:
		return cmp(int64(h.Round), int64(o.Round))
	default:
		return cmp(int64(h.Step), int64(o.Step))
	}
}

func cmp(a, b int64) int {
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

// HRS returns the state's position.
func (s State) HRS() HRS { return HRS{s.Height, s.Round, s.Step} }

// Refusals. Every refusal wraps one of these, so callers can map them to
// wire error codes with errors.Is.
var (
	ErrHeightRegression = errors.New("height regression")
	ErrRoundRegression  = errors.New("round regression")
	ErrStepRegression   = errors.New("step regression")
	ErrDoubleSign       = errors.New("double sign")
	// ErrCorrupt marks a state file or record that cannot be trusted.
	ErrCorrupt = errors.New("corrupt state")
)

// IsRefusal reports whether err is a double-sign-protection refusal rather
// than an I/O or input problem.
func IsRefusal(err error) bool {
	return errors.Is(err, ErrHeightRegression) || errors.Is(err, ErrRoundRegression) ||
		errors.Is(err, ErrStepRegression) || errors.Is(err, ErrDoubleSign)
}
