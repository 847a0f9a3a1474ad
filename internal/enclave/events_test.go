package enclave

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tmkms-nitro/tmkms-nitro/internal/anchor"
	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/ha"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// TestReasonOf wraps each sentinel the way the signer, the guard and the
// store do, under wording that shares nothing with the sentinels' own
// texts: the reason follows the error chain, never its words.
func TestReasonOf(t *testing.T) {
	wrap := func(outer error, inner error) error { return fmt.Errorf("%w: reworded %w", outer, inner) }
	tests := []struct {
		name string
		err  error
		want enclaveproto.Reason
	}{
		{"etcd without quorum", wrap(signer.ErrCluster, ha.ErrUnavailable), enclaveproto.ReasonCluster},
		{"anchor unreachable", wrap(signer.ErrCluster, anchor.ErrUnavailable), enclaveproto.ReasonCluster},
		{"forged cluster record", wrap(signer.ErrCluster, ha.ErrForged), enclaveproto.ReasonCluster},
		{"another instance won", wrap(signer.ErrLostRace, signstate.ErrDoubleSign), enclaveproto.ReasonLostRace},
		{"another instance is ahead", wrap(signer.ErrLostRace, signstate.ErrHeightRegression), enclaveproto.ReasonLostRace},
		{"host refused to persist", wrap(signer.ErrPersist, &enclaveproto.Error{Code: enclaveproto.CodeStateRegression, Message: "x"}), enclaveproto.ReasonPersistFailed},
		{"persist failure citing a regression", wrap(signer.ErrPersist, signstate.ErrHeightRegression), enclaveproto.ReasonPersistFailed},
		{"double sign", fmt.Errorf("x: %w", signstate.ErrDoubleSign), enclaveproto.ReasonDoubleSign},
		{"height regression", fmt.Errorf("x: %w", signstate.ErrHeightRegression), enclaveproto.ReasonRegression},
		{"round regression", fmt.Errorf("x: %w", signstate.ErrRoundRegression), enclaveproto.ReasonRegression},
		{"step regression", fmt.Errorf("x: %w", signstate.ErrStepRegression), enclaveproto.ReasonRegression},
		{"wrong chain id", fmt.Errorf("x: %w", signer.ErrChainID), enclaveproto.ReasonWrongChainID},
		{"malformed request", fmt.Errorf("x: %w", signer.ErrInvalidRequest), enclaveproto.ReasonInvalid},
		{"above max_height", fmt.Errorf("x: %w", signer.ErrMaxHeight), enclaveproto.ReasonOther},
		{"words alone", errors.New("refused to sign: double sign, height regression, wrong chain id"), enclaveproto.ReasonOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reasonOf(tt.err); got != tt.want {
				t.Errorf("reasonOf(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestEventOf(t *testing.T) {
	hrs := signstate.HRS{Height: 7, Round: 1, Step: signstate.StepPrecommit}
	hash := bytes.Repeat([]byte{0xab}, 32)
	// One byte, then 2-byte runes: the cut at MaxRefusalText splits one.
	long := errors.New("x" + strings.Repeat("é", enclaveproto.MaxRefusalText))
	tests := []struct {
		name string
		in   signer.Event
		want enclaveproto.Event
	}{
		{"signed", signer.Event{HRS: hrs, BlockID: signstate.BlockID{Hash: hash}, Latency: time.Millisecond},
			&enclaveproto.Signed{ChainID: "c", Height: 7, Round: 1, Step: 3, BlockHash: hash, Latency: time.Millisecond}},
		{"repeat answered from the stored signature", signer.Event{HRS: hrs, Reused: true}, nil},
		{"refused", signer.Event{HRS: hrs, Err: signstate.ErrDoubleSign},
			&enclaveproto.Refused{ChainID: "c", Height: 7, Round: 1, Step: 3, Reason: enclaveproto.ReasonDoubleSign, Message: "double sign"}},
		{"refused before the guard", signer.Event{Err: signer.ErrChainID},
			&enclaveproto.Refused{ChainID: "c", Reason: enclaveproto.ReasonWrongChainID, Message: "wrong chain id"}},
		{"refused with a long message", signer.Event{Err: long},
			&enclaveproto.Refused{ChainID: "c", Reason: enclaveproto.ReasonOther, Message: "x" + strings.Repeat("é", enclaveproto.MaxRefusalText/2-1)}},
		{"refused with bytes that are not UTF-8", signer.Event{Err: errors.New("chain \xff\xfe")},
			&enclaveproto.Refused{ChainID: "c", Reason: enclaveproto.ReasonOther, Message: "chain "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := eventOf("c", tt.in)
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", tt.want) {
				t.Fatalf("eventOf = %#v, want %#v", got, tt.want)
			}
			if got == nil {
				return
			}
			// What the enclave reports must be what the host accepts.
			var buf bytes.Buffer
			if err := enclaveproto.Write(&buf, got, 0); err != nil {
				t.Fatalf("the event does not encode: %v", err)
			}
			if r, ok := got.(*enclaveproto.Refused); ok && !utf8.ValidString(r.Message) {
				t.Errorf("message cut into invalid UTF-8")
			}
		})
	}
}
