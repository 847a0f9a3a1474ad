// Package privval speaks CometBFT's privval protocol from the signer side:
// it dials the node's priv_validator_laddr, reads length-prefixed requests,
// answers each through a Signer, and redials whenever the connection fails.
//
// Bad input never stops the signer: an oversized or malformed frame is
// logged and the connection is dropped and redialed; a request the signer
// refuses gets a RemoteSignerError on a connection that stays up.
package privval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	pvproto "github.com/cometbft/cometbft/api/cometbft/privval/v1"
	cmtproto "github.com/cometbft/cometbft/api/cometbft/types/v1"

	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// RemoteSignerError codes this signer sends. CometBFT does not interpret
// them; they are for the operator reading the node's log.
const (
	CodeUnknown     = 0
	CodeChainID     = 1 // request for another chain (tmkms uses 1 too)
	CodeDoubleSign  = 2 // conflicting message at a signed height/round/step (tmkms uses 2 too)
	CodeRegression  = 3 // height, round or step below the last signed one
	CodeInvalid     = 4 // malformed vote or proposal
	CodeUnavailable = 5 // state not persisted, or decision not committed to the HA cluster; nothing signed
	CodeRefused     = 6 // request this signer refuses by policy (SignBytes, above max_height)
)

// Signer is what the handler needs from a signer.
type Signer interface {
	PubKey(chainID string) (signer.PubKey, error)
	SignVote(ctx context.Context, chainID string, v *cmtproto.Vote, signExtension bool) (signer.Signed, error)
	SignProposal(ctx context.Context, chainID string, p *cmtproto.Proposal) (signer.Signed, error)
}

// Handler answers privval requests.
type Handler struct {
	signer  Signer
	dialect Dialect
	log     *slog.Logger
}

// NewHandler returns a handler; a nil logger discards.
func NewHandler(s Signer, d Dialect, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{signer: s, dialect: d, log: log}
}

// Handle answers one encoded request with one encoded response (without
// the length prefix). An error means the request breaks the protocol and
// the connection should be dropped.
func (h *Handler) Handle(ctx context.Context, body []byte) ([]byte, error) {
	req, err := decodeMessage(body)
	if err != nil {
		return nil, err
	}
	var resp pvproto.Message
	switch r := req.Sum.(type) {
	case *pvproto.Message_PingRequest:
		resp.Sum = &pvproto.Message_PingResponse{PingResponse: &pvproto.PingResponse{}}
	case *pvproto.Message_PubKeyRequest:
		pk, err := h.signer.PubKey(r.PubKeyRequest.ChainId)
		return h.dialect.pubKeyResponse(pk, remoteError(err))
	case *pvproto.Message_SignVoteRequest:
		resp.Sum = &pvproto.Message_SignedVoteResponse{SignedVoteResponse: h.signVote(ctx, r.SignVoteRequest)}
	case *pvproto.Message_SignProposalRequest:
		resp.Sum = &pvproto.Message_SignedProposalResponse{SignedProposalResponse: h.signProposal(ctx, r.SignProposalRequest)}
	case *pvproto.Message_SignBytesRequest:
		// Raw bytes signed with the consensus key could be a vote or a
		// proposal in disguise; nothing in CometBFT v1.0 sends this.
		h.log.Error("refused SignBytes request: arbitrary bytes are never signed with the consensus key")
		resp.Sum = &pvproto.Message_SignBytesResponse{SignBytesResponse: &pvproto.SignBytesResponse{
			Error: &pvproto.RemoteSignerError{Code: CodeRefused, Description: "this signer does not sign arbitrary bytes"},
		}}
	default:
		return nil, fmt.Errorf("%w: unexpected message %T", ErrMalformed, req.Sum)
	}
	return resp.Marshal()
}

func (h *Handler) signVote(ctx context.Context, r *pvproto.SignVoteRequest) *pvproto.SignedVoteResponse {
	if r.Vote == nil {
		return &pvproto.SignedVoteResponse{Error: &pvproto.RemoteSignerError{Code: CodeInvalid, Description: "vote missing"}}
	}
	v := *r.Vote
	out, err := h.signer.SignVote(ctx, r.ChainId, &v, h.dialect.signsExtension(r))
	if err != nil {
		return &pvproto.SignedVoteResponse{Error: remoteError(err)}
	}
	v.Signature, v.Timestamp, v.ExtensionSignature = out.Signature, out.Timestamp, out.ExtensionSignature
	return &pvproto.SignedVoteResponse{Vote: v}
}

func (h *Handler) signProposal(ctx context.Context, r *pvproto.SignProposalRequest) *pvproto.SignedProposalResponse {
	if r.Proposal == nil {
		return &pvproto.SignedProposalResponse{Error: &pvproto.RemoteSignerError{Code: CodeInvalid, Description: "proposal missing"}}
	}
	p := *r.Proposal
	out, err := h.signer.SignProposal(ctx, r.ChainId, &p)
	if err != nil {
		return &pvproto.SignedProposalResponse{Error: remoteError(err)}
	}
	p.Signature, p.Timestamp = out.Signature, out.Timestamp
	return &pvproto.SignedProposalResponse{Proposal: p}
}

// remoteError maps a signer error to what the node sees. The description is
// public: it never carries paths or I/O detail, which stay in our log.
func remoteError(err error) *pvproto.RemoteSignerError {
	if err == nil {
		return nil
	}
	code := int32(CodeUnknown)
	desc := err.Error()
	switch {
	case errors.Is(err, signer.ErrChainID):
		code = CodeChainID
	case errors.Is(err, signstate.ErrDoubleSign):
		code = CodeDoubleSign
	case signstate.IsRefusal(err):
		code = CodeRegression
	case errors.Is(err, signer.ErrInvalidRequest):
		code = CodeInvalid
	case errors.Is(err, signer.ErrMaxHeight):
		code = CodeRefused
	case errors.Is(err, signer.ErrPersist):
		code, desc = CodeUnavailable, "sign state could not be persisted; nothing was signed"
	case errors.Is(err, signer.ErrCluster):
		code, desc = CodeUnavailable, "the high-availability cluster did not accept the decision; nothing was signed"
	default:
		desc = "internal signer error"
	}
	return &pvproto.RemoteSignerError{Code: code, Description: desc}
}
