// Package signer holds a consensus key and signs votes and proposals for one
// chain, applying the double-sign guard of package signstate.
//
// A signature leaves Sign* only after the state that records it has been
// persisted by the Store; if persisting fails, nothing is returned but the
// error. Requests are validated before anything is computed from them, so a
// malformed request is an error, never a panic.
package signer

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	cmtproto "github.com/cometbft/cometbft/api/cometbft/types/v1"

	"github.com/tmkms-nitro/tmkms-nitro/internal/signbytes"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

var (
	// ErrChainID marks a request for another chain than the signer's.
	ErrChainID = errors.New("wrong chain id")
	// ErrInvalidRequest marks a request that no honest node sends.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrPersist marks a failure to persist the state; nothing was signed.
	ErrPersist = errors.New("failed to persist sign state")
	// ErrMaxHeight marks a request above the configured max_height.
	ErrMaxHeight = errors.New("height above max_height")
	// ErrCluster marks a decision the cluster guard did not accept or
	// could not be asked about; nothing was signed.
	ErrCluster = errors.New("decision not committed to the cluster")
	// ErrLostRace marks a request refused because another instance's
	// decision, committed to the cluster first, is in force at or above
	// its position; it wraps the guard's refusal.
	ErrLostRace = errors.New("the cluster holds another decision at or above this position")
)

// Store persists the state. Save must be durable when it returns nil.
type Store interface {
	Save(ctx context.Context, s signstate.State) error
}

// Cluster is the guard shared by several signer instances (package ha).
type Cluster interface {
	// Commit makes st the cluster's decision at its position unless one
	// exists at or above it, and returns the decision in force (without
	// signature) and the instance that made it.
	Commit(ctx context.Context, st signstate.State) (signstate.State, string, error)
}

// Signed is what a signing request returns.
type Signed struct {
	Signature          []byte
	ExtensionSignature []byte // only for non-nil precommits, when asked
	Timestamp          time.Time
	// Reused is set when the request repeated the last signed message and
	// the stored signature (and timestamp) was returned.
	Reused bool
}

// Event describes one answered signing request, for metrics and displays.
type Event struct {
	HRS     signstate.HRS // zero for a request refused before its position was checked
	BlockID signstate.BlockID
	Latency time.Duration // guard + signature + durable persist
	Reused  bool
	Err     error // a refusal or failure; nothing was signed
}

// Options are optional settings of a Signer.
type Options struct {
	Log *slog.Logger // nil discards
	// Observe is called once for every signing request answered, signed
	// or refused, and for every public key request refused. It must not
	// block: requests that reach the guard call it under the signer's lock.
	Observe func(Event)
	// MaxHeight, if positive, is the last height signed (tmkms's
	// max_height, for a planned halt or migration).
	MaxHeight int64
	// Cluster, if set, must accept each decision before it is signed
	// (high availability); nil: this signer is the only one.
	Cluster Cluster
}

// Signer signs for one chain with one key.
type Signer struct {
	key     Key
	chainID string
	store   Store
	log     *slog.Logger
	observe func(Event)
	max     int64
	cluster Cluster

	mu          sync.Mutex
	last        signstate.State // the guard: the last message signed
	unpersisted bool            // last is not yet acknowledged as durable
}

// New returns a signer whose last signed state is last (as loaded from the
// store).
func New(key Key, chainID string, last signstate.State, store Store, opts Options) *Signer {
	s := &Signer{key: key, chainID: chainID, store: store, log: opts.Log, observe: opts.Observe, last: last, max: opts.MaxHeight, cluster: opts.Cluster}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.observe == nil {
		s.observe = func(Event) {}
	}
	return s
}

// LastState returns the last signed state.
func (s *Signer) LastState() signstate.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// PubKey returns the consensus public key.
func (s *Signer) PubKey(chainID string) (PubKey, error) {
	if err := s.checkChainID(chainID); err != nil {
		return PubKey{}, err
	}
	return s.key.PubKey(), nil
}

func (s *Signer) checkChainID(chainID string) error {
	if chainID != s.chainID {
		return s.refuse(fmt.Errorf("%w: request for %q, signer is for %q", ErrChainID, chainID, s.chainID))
	}
	return nil
}

// refuse reports a request refused before the guard (the guard's
// refusals are reported by sign) and returns err.
func (s *Signer) refuse(err error) error {
	s.log.Error("refused to sign", "chain_id", s.chainID, "err", err)
	s.observe(Event{Err: err})
	return err
}

// SignVote signs a prevote or precommit. With signExtension, a non-nil
// precommit also gets its vote extension signed.
func (s *Signer) SignVote(ctx context.Context, chainID string, v *cmtproto.Vote, signExtension bool) (Signed, error) {
	if err := s.checkChainID(chainID); err != nil {
		return Signed{}, err
	}
	step, bid, err := validateVote(v)
	if err != nil {
		return Signed{}, s.refuse(err)
	}
	if err := s.checkMaxHeight(v.Height); err != nil {
		return Signed{}, err
	}
	sb, err := signbytes.Vote(chainID, v)
	if err != nil {
		return Signed{}, s.refuse(fmt.Errorf("%w: %v", ErrInvalidRequest, err))
	}
	req := signstate.Request{
		HRS:       signstate.HRS{Height: v.Height, Round: v.Round, Step: step},
		BlockID:   bid,
		SignBytes: sb,
	}
	out, err := s.sign(ctx, req, v.Timestamp)
	if err != nil {
		return Signed{}, err
	}
	if signExtension && step == signstate.StepPrecommit && !bid.IsNil() {
		ext, err := signbytes.VoteExtension(chainID, v)
		if err != nil {
			return Signed{}, fmt.Errorf("signer: vote extension: %w", err)
		}
		if out.ExtensionSignature, err = s.key.Sign(ext); err != nil {
			return Signed{}, fmt.Errorf("signer: failed to sign vote extension: %w", err)
		}
	}
	return out, nil
}

// SignProposal signs a proposal.
func (s *Signer) SignProposal(ctx context.Context, chainID string, p *cmtproto.Proposal) (Signed, error) {
	if err := s.checkChainID(chainID); err != nil {
		return Signed{}, err
	}
	bid, err := validateProposal(p)
	if err != nil {
		return Signed{}, s.refuse(err)
	}
	if err := s.checkMaxHeight(p.Height); err != nil {
		return Signed{}, err
	}
	sb, err := signbytes.Proposal(chainID, p)
	if err != nil {
		return Signed{}, s.refuse(fmt.Errorf("%w: %v", ErrInvalidRequest, err))
	}
	req := signstate.Request{
		HRS:       signstate.HRS{Height: p.Height, Round: p.Round, Step: signstate.StepPropose},
		BlockID:   bid,
		SignBytes: sb,
	}
	return s.sign(ctx, req, p.Timestamp)
}

// sign applies the guard, signs, and persists before returning.
func (s *Signer) sign(ctx context.Context, req signstate.Request, ts time.Time) (Signed, error) {
	start := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out, err := s.signLocked(ctx, req, ts)
	s.observe(Event{HRS: req.HRS, BlockID: req.BlockID, Latency: time.Since(start), Reused: out.Reused, Err: err})
	return out, err
}

func (s *Signer) signLocked(ctx context.Context, req signstate.Request, ts time.Time) (Signed, error) {
	start := time.Now()
	verdict, err := signstate.Check(s.last, req)
	if err != nil {
		s.log.Error("refused to sign", "chain_id", s.chainID, "type", req.Step, "hrs", req.HRS, "block", shortID(req.BlockID), "err", err)
		return Signed{}, err
	}
	if verdict.Reuse {
		return s.reuseLocked(ctx, req, verdict, ts)
	}
	if s.cluster != nil {
		if out, done, err := s.commitLocked(ctx, req, ts); done {
			return out, err
		}
	}
	sig, err := s.key.Sign(req.SignBytes)
	if err != nil {
		return Signed{}, fmt.Errorf("signer: failed to sign: %w", err)
	}
	// The guard moves before the state is persisted, not after: the store
	// (the host, in the enclave) sees the signature when asked to persist
	// it, so a failed or withheld acknowledgement must not let a different
	// payload be signed at this position. Only this payload may be
	// released here, once its state is durable.
	s.last = req.State(sig)
	s.unpersisted = true
	if err := s.persistLocked(ctx); err != nil {
		return Signed{}, err
	}
	s.log.Info("signed", "chain_id", s.chainID, "type", req.Step, "hrs", req.HRS, "block", shortID(req.BlockID),
		"latency", time.Since(start).Round(time.Microsecond))
	return Signed{Signature: sig, Timestamp: ts}, nil
}

func (s *Signer) reuseLocked(ctx context.Context, req signstate.Request, verdict signstate.Verdict, ts time.Time) (Signed, error) {
	// The stored signature may never have been acknowledged as persisted:
	// persist it before it is released.
	if err := s.persistLocked(ctx); err != nil {
		return Signed{}, err
	}
	s.log.Info("repeated request, returning the stored signature", "chain_id", s.chainID, "type", req.Step, "hrs", req.HRS,
		"block", shortID(req.BlockID), "timestamp_changed", !verdict.Timestamp.Equal(ts))
	return Signed{Signature: verdict.Signature, Timestamp: verdict.Timestamp, Reused: true}, nil
}

// commitLocked commits req as the cluster's decision before it is signed.
// It reports done when the request has been answered here: the cluster
// was unavailable (fail closed), or another instance won the position and
// req is either the same message (answered with the same signature: both
// key types sign deterministically, secp256k1 by RFC 6979) or is refused.
func (s *Signer) commitLocked(ctx context.Context, req signstate.Request, ts time.Time) (Signed, bool, error) {
	won, instance, err := s.cluster.Commit(ctx, req.State(nil))
	if err != nil {
		s.log.Error("refused to sign: the decision could not be committed to the cluster", "chain_id", s.chainID, "hrs", req.HRS, "err", err)
		return Signed{}, true, fmt.Errorf("%w: %w", ErrCluster, err)
	}
	if won.HRS() == req.HRS && bytes.Equal(won.SignBytes, req.SignBytes) {
		return Signed{}, false, nil
	}
	// A decision below the request breaks the cluster's contract (the
	// guard returns only decisions at or above it): adopting it could move
	// this signer's guard back below what it signed. Nothing of it is used.
	if won.HRS().Compare(req.HRS) < 0 {
		err := fmt.Errorf("%w: the cluster returned a decision at %s for a request at %s", ErrCluster, won.HRS(), req.HRS)
		s.log.Error("refused to sign: the cluster's answer is below the request", "chain_id", s.chainID, "hrs", req.HRS, "winner", instance, "err", err)
		return Signed{}, true, err
	}
	// Another instance's decision is in force, at or above the request and
	// so above anything this signer signed: it becomes this signer's guard
	// too, with its signature, so that a repeat is answered from it.
	if won.Signature, err = s.key.Sign(won.SignBytes); err != nil {
		return Signed{}, true, fmt.Errorf("signer: failed to sign: %w", err)
	}
	s.last, s.unpersisted = won, true
	verdict, err := signstate.Check(won, req)
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrLostRace, err)
		s.log.Error("refused to sign: another decision is in force", "chain_id", s.chainID, "type", req.Step,
			"hrs", req.HRS, "block", shortID(req.BlockID), "winner", instance, "winner_hrs", won.HRS(), "err", err)
		return Signed{}, true, err
	}
	s.log.Info("the cluster holds this message already, answering with its signature", "chain_id", s.chainID, "hrs", req.HRS, "winner", instance)
	out, err := s.reuseLocked(ctx, req, verdict, ts)
	return out, true, err
}

// persistLocked saves s.last if it is not known to be durable yet.
func (s *Signer) persistLocked(ctx context.Context) error {
	if !s.unpersisted {
		return nil
	}
	if err := s.store.Save(ctx, s.last); err != nil {
		s.log.Error("refused to sign: state not persisted", "chain_id", s.chainID, "hrs", s.last.HRS(), "err", err)
		return fmt.Errorf("%w: %w", ErrPersist, err)
	}
	s.unpersisted = false
	return nil
}

func shortID(id signstate.BlockID) string {
	if id.IsNil() {
		return "nil"
	}
	return hex.EncodeToString(id.Hash[:min(len(id.Hash), 6)])
}

func validateVote(v *cmtproto.Vote) (signstate.Step, signstate.BlockID, error) {
	if v == nil {
		return 0, signstate.BlockID{}, fmt.Errorf("%w: vote missing", ErrInvalidRequest)
	}
	var step signstate.Step
	switch v.Type {
	case cmtproto.PrevoteType:
		step = signstate.StepPrevote
	case cmtproto.PrecommitType:
		step = signstate.StepPrecommit
	default:
		return 0, signstate.BlockID{}, fmt.Errorf("%w: vote type %d is neither prevote nor precommit", ErrInvalidRequest, v.Type)
	}
	if err := validatePosition(v.Height, v.Round); err != nil {
		return 0, signstate.BlockID{}, err
	}
	bid, err := validateBlockID(&v.BlockID)
	return step, bid, err
}

func validateProposal(p *cmtproto.Proposal) (signstate.BlockID, error) {
	if p == nil {
		return signstate.BlockID{}, fmt.Errorf("%w: proposal missing", ErrInvalidRequest)
	}
	if p.Type != cmtproto.ProposalType {
		return signstate.BlockID{}, fmt.Errorf("%w: proposal type %d", ErrInvalidRequest, p.Type)
	}
	if err := validatePosition(p.Height, p.Round); err != nil {
		return signstate.BlockID{}, err
	}
	if p.PolRound < -1 || p.PolRound >= p.Round && p.PolRound != -1 {
		return signstate.BlockID{}, fmt.Errorf("%w: pol_round %d with round %d", ErrInvalidRequest, p.PolRound, p.Round)
	}
	bid, err := validateBlockID(&p.BlockID)
	if err == nil && bid.IsNil() {
		err = fmt.Errorf("%w: proposal for a nil block", ErrInvalidRequest)
	}
	return bid, err
}

func validatePosition(height int64, round int32) error {
	if height <= 0 || round < 0 {
		return fmt.Errorf("%w: height %d round %d", ErrInvalidRequest, height, round)
	}
	return nil
}

func (s *Signer) checkMaxHeight(height int64) error {
	if s.max > 0 && height > s.max {
		return s.refuse(fmt.Errorf("%w: %d > %d", ErrMaxHeight, height, s.max))
	}
	return nil
}

// validateBlockID rejects what CometBFT's own canonicalization would panic on.
func validateBlockID(b *cmtproto.BlockID) (signstate.BlockID, error) {
	if err := signbytes.ValidateBlockID(b); err != nil {
		return signstate.BlockID{}, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	return signstate.BlockID{Hash: b.Hash, PartsTotal: b.PartSetHeader.Total, PartsHash: b.PartSetHeader.Hash}, nil
}
