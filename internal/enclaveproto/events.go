package enclaveproto

import (
	"slices"
	"time"
)

// Event is what the enclave reports about its work on the log channel,
// with no answer: *Signed or *Refused. Log records are for people and
// their wording may change; events are what programs (metrics, tools)
// read.
type Event interface {
	Message
	event()
}

// Signed reports one signature the enclave released. A repeated request
// answered with the stored signature is not reported: nothing new was
// signed.
type Signed struct {
	ChainID string `cbor:"chain_id"`
	Height  int64  `cbor:"height"`
	Round   int32  `cbor:"round"`
	Step    int8   `cbor:"step"` // 1 proposal, 2 prevote, 3 precommit (signstate.Step)
	// BlockHash is the hash of the block signed for; empty for a nil vote.
	BlockHash []byte `cbor:"block_hash"`
	// Latency runs from the request reaching the signer to the signature
	// being released: guard, cluster commit, signature and durable state.
	Latency time.Duration `cbor:"latency_ns"`
}

// Refused reports one signing request the enclave refused or failed;
// nothing was signed for it.
type Refused struct {
	ChainID string `cbor:"chain_id"` // the signer's chain, not the request's
	// Height, Round and Step are the request's position, all 0 when it was
	// refused before one was known (another chain, a malformed request).
	Height int64  `cbor:"height"`
	Round  int32  `cbor:"round"`
	Step   int8   `cbor:"step"`
	Reason Reason `cbor:"reason"`
	// Message is the error, for people; programs read Reason.
	Message string `cbor:"msg"`
}

// Reason says why a request was refused. The set is closed; a value is
// never reused for another meaning. The values are the reason label of
// the helper's tmkms_refusals_total, so they are also what dashboards and
// alerts match.
type Reason string

// Refusal reasons, in the order the enclave tests for them: the first
// that matches the refusal's error is reported.
const (
	ReasonCluster       Reason = "cluster_unavailable" // the decision could not be committed to the cluster (etcd or anchor unreachable, no quorum)
	ReasonLostRace      Reason = "cluster_lost_race"   // another instance's decision is in force at or above the request
	ReasonPersistFailed Reason = "persist_failed"      // the host did not make the state durable
	ReasonDoubleSign    Reason = "double_sign"         // another message was signed at this position
	ReasonRegression    Reason = "regression"          // height, round or step below the last signed
	ReasonWrongChainID  Reason = "wrong_chain_id"      // a request for another chain
	ReasonInvalid       Reason = "invalid"             // a request no honest node sends
	ReasonOther         Reason = "other"               // anything else (max_height, a key failure)
)

var reasons = []Reason{ReasonCluster, ReasonLostRace, ReasonPersistFailed, ReasonDoubleSign, ReasonRegression, ReasonWrongChainID, ReasonInvalid, ReasonOther}

// Reasons returns every refusal reason.
func Reasons() []Reason { return slices.Clone(reasons) }

// Known reports whether r is one of the Reason constants.
func (r Reason) Known() bool { return slices.Contains(reasons, r) }

// MaxRefusalText bounds Refused.Message, in bytes.
const MaxRefusalText = maxErrText

// maxBlockHash bounds Signed.BlockHash; CometBFT's hashes are 32 bytes.
const maxBlockHash = 64

func (*Signed) Type() Type  { return TypeSigned }
func (*Refused) Type() Type { return TypeRefused }

func (*Signed) event()  {}
func (*Refused) event() {}

func (s *Signed) validate() error {
	switch {
	case len(s.ChainID) > MaxChainID:
		return invalid("chain_id is %d bytes, at most %d allowed", len(s.ChainID), MaxChainID)
	case s.Height <= 0 || s.Round < 0:
		return invalid("signature at height %d round %d", s.Height, s.Round)
	case s.Step < 1 || s.Step > 3:
		return invalid("signature at step %d, want 1 to 3", s.Step)
	case len(s.BlockHash) > maxBlockHash:
		return invalid("block_hash is %d bytes, at most %d allowed", len(s.BlockHash), maxBlockHash)
	case s.Latency < 0:
		return invalid("latency %d is negative", s.Latency)
	}
	return nil
}

func (r *Refused) validate() error {
	switch {
	case len(r.ChainID) > MaxChainID:
		return invalid("chain_id is %d bytes, at most %d allowed", len(r.ChainID), MaxChainID)
	case r.Step < 0 || r.Step > 3:
		return invalid("refusal at step %d, want 0 to 3", r.Step)
	case !r.Reason.Known():
		return invalid("unknown refusal reason %q", r.Reason)
	case len(r.Message) > MaxRefusalText:
		return invalid("refusal message is %d bytes, at most %d allowed", len(r.Message), MaxRefusalText)
	}
	return checkHR(r.Height, r.Round)
}
