// Package ha is the enclave's side of high availability: several signer
// instances, each an enclave holding the same sealed consensus key, agree
// on the one message signed at each height/round/step through a
// linearizable store (etcd) that their hosts reach.
//
// The store holds one record per chain: the last decision committed, that
// is a position and the sign bytes to be signed there, never a signature
// (ed25519 is deterministic, so any instance can produce the signature of a
// committed decision, and a host never sees a signature before the
// decision is committed). Records are authenticated with an HMAC key
// derived from the consensus key, so only an enclave holding that key can
// write a record that another enclave accepts.
//
// An instance commits its decision with a compare-and-swap on the record's
// revision before it signs; an instance that loses the race learns the
// winner's decision and either answers with the same signature (the request
// was the same, timestamp aside) or refuses.
package ha

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"

	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// ErrForged marks a record that this key did not authenticate: forged,
// corrupted, or written for another key or chain under the same prefix.
var ErrForged = errors.New("cluster record not authenticated by this validator key")

const (
	recordVersion = 1
	// MaxRecordSize bounds a record: a state (sign bytes up to the state
	// record's limit), an instance name and a MAC.
	MaxRecordSize = 2 << 10
	maxInstance   = 64
)

// Key authenticates records. It is derived from the consensus key's seed
// and the chain id, so it exists only where that key has been unsealed.
type Key struct{ k []byte }

// DeriveKey returns the record key of a consensus key seed for a chain.
func DeriveKey(seed []byte, chainID string) (Key, error) {
	k, err := hkdf.Key(sha256.New, seed, nil, "tmkms-nitro ha record key v1\x00"+chainID, 32)
	if err != nil {
		return Key{}, fmt.Errorf("ha: failed to derive the record key: %w", err)
	}
	return Key{k: k}, nil
}

// String never shows the key.
func (Key) String() string { return "ha.Key(redacted)" }

// record is the encoding in the store: a CBOR array.
type record struct {
	_        struct{} `cbor:",toarray"`
	Version  uint8
	State    []byte // signstate.MarshalState of the decision, without signature
	Instance string
	MAC      []byte
}

var decMode = func() cbor.DecMode {
	m, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		MaxArrayElements:  16,
		MaxNestedLevels:   4,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}()

func (k Key) mac(state []byte, instance string) []byte {
	h := hmac.New(sha256.New, k.k)
	h.Write([]byte("tmkms-nitro/ha-record/v1\x00"))
	h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(instance))))
	h.Write([]byte(instance))
	h.Write(state)
	return h.Sum(nil)
}

// Seal encodes the decision st (its signature, if any, is left out) made
// by instance.
func (k Key) Seal(st signstate.State, instance string) ([]byte, error) {
	if len(instance) > maxInstance {
		return nil, fmt.Errorf("ha: instance name longer than %d bytes", maxInstance)
	}
	st.Signature = nil
	b, err := signstate.MarshalState(st)
	if err != nil {
		return nil, err
	}
	return cbor.Marshal(record{Version: recordVersion, State: b, Instance: instance, MAC: k.mac(b, instance)})
}

// Open authenticates and decodes a record, returning the decision (without
// signature) and the instance that made it.
func (k Key) Open(b []byte) (signstate.State, string, error) {
	if len(b) > MaxRecordSize {
		return signstate.State{}, "", fmt.Errorf("%w: record of %d bytes", ErrForged, len(b))
	}
	var r record
	if err := decMode.Unmarshal(b, &r); err != nil {
		return signstate.State{}, "", fmt.Errorf("%w: malformed record: %v", ErrForged, err)
	}
	if r.Version != recordVersion {
		return signstate.State{}, "", fmt.Errorf("%w: record version %d, want %d", ErrForged, r.Version, recordVersion)
	}
	if len(r.Instance) > maxInstance || !hmac.Equal(r.MAC, k.mac(r.State, r.Instance)) {
		return signstate.State{}, "", fmt.Errorf("%w: bad MAC", ErrForged)
	}
	st, err := signstate.UnmarshalState(r.State)
	if err != nil {
		return signstate.State{}, "", fmt.Errorf("%w: %v", ErrForged, err)
	}
	if len(st.Signature) != 0 || len(st.SignBytes) == 0 {
		return signstate.State{}, "", fmt.Errorf("%w: a decision carries sign bytes and no signature", ErrForged)
	}
	return st, r.Instance, nil
}

// Peek decodes a record's decision and instance without authenticating it,
// for the host's logs and metrics, which must never act on it.
func Peek(b []byte) (signstate.HRS, string, bool) {
	var r record
	if decMode.Unmarshal(b, &r) != nil {
		return signstate.HRS{}, "", false
	}
	st, err := signstate.UnmarshalState(r.State)
	if err != nil {
		return signstate.HRS{}, "", false
	}
	return st.HRS(), r.Instance, true
}
