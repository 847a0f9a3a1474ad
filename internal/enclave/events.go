package enclave

import (
	"errors"
	"strings"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// eventOf turns the signer's account of one request into the event the
// host counts, or nil when there is nothing to report: a repeated request
// answered with the stored signature signed nothing new.
func eventOf(chainID string, e signer.Event) enclaveproto.Event {
	if e.Err != nil {
		// The message is for people: a cut one still serves. The host
		// requires valid UTF-8, which neither the cut nor an error quoting
		// request bytes is sure to leave.
		msg := e.Err.Error()
		msg = strings.ToValidUTF8(msg[:min(len(msg), enclaveproto.MaxRefusalText)], "")
		return &enclaveproto.Refused{ChainID: chainID, Height: e.HRS.Height, Round: e.HRS.Round, Step: int8(e.HRS.Step),
			Reason: reasonOf(e.Err), Message: msg}
	}
	if e.Reused {
		return nil
	}
	return &enclaveproto.Signed{ChainID: chainID, Height: e.HRS.Height, Round: e.HRS.Round, Step: int8(e.HRS.Step),
		BlockHash: e.BlockID.Hash, Latency: e.Latency}
}

// reasonOf classifies a refusal by the sentinel errors it wraps. The order
// matters where errors nest: a refusal to persist may carry the host's
// regression complaint, and a lost race wraps the guard's double sign.
func reasonOf(err error) enclaveproto.Reason {
	switch {
	case errors.Is(err, signer.ErrCluster):
		return enclaveproto.ReasonCluster
	case errors.Is(err, signer.ErrLostRace):
		return enclaveproto.ReasonLostRace
	case errors.Is(err, signer.ErrPersist):
		return enclaveproto.ReasonPersistFailed
	case errors.Is(err, signstate.ErrDoubleSign):
		return enclaveproto.ReasonDoubleSign
	case signstate.IsRefusal(err):
		return enclaveproto.ReasonRegression
	case errors.Is(err, signer.ErrChainID):
		return enclaveproto.ReasonWrongChainID
	case errors.Is(err, signer.ErrInvalidRequest):
		return enclaveproto.ReasonInvalid
	}
	return enclaveproto.ReasonOther
}
