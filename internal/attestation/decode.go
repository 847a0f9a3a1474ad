package attestation

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/fxamacker/cbor/v2"
)

// Limits from the AWS attestation document specification, plus the ones the
// spec leaves open, chosen far above anything a real NSM produces.
const (
	maxPCRs         = 32   // PCR indices 0..31
	pcrSize         = 48   // SHA-384
	maxCertSize     = 1024 // certificate and each cabundle entry
	maxCABundle     = 16   // real chains have 4 entries
	maxOptionalSize = 1024 // public_key, user_data, nonce (the CDDL bound)
	tagCOSESign1    = 0xd2 // CBOR tag 18 in its only canonical encoding
	undefinedValue  = 23   // CBOR simple value "undefined"
)

// protectedES384 is the only protected header accepted: the CBOR map
// {1: -35}, i.e. alg ES384. Comparing bytes leaves no room for alternative
// encodings of the same header.
var protectedES384 = []byte{0xa1, 0x01, 0x38, 0x22}

// emptyMap is the unprotected header of every NSM document. Unprotected
// data is not signed, so none is accepted.
var emptyMap = []byte{0xa0}

// coseSign1 is RFC 9052's COSE_Sign1 array.
type coseSign1 struct {
	_           struct{} `cbor:",toarray"`
	Protected   []byte
	Unprotected cbor.RawMessage
	Payload     []byte
	Signature   []byte
}

// payload is the attestation document proper, with keys in the order the
// NSM writes them (Sign relies on that order).
type payload struct {
	ModuleID    string   `cbor:"module_id"`
	Digest      string   `cbor:"digest"`
	Timestamp   uint64   `cbor:"timestamp"`
	PCRs        pcrMap   `cbor:"pcrs"`
	Certificate []byte   `cbor:"certificate"`
	CABundle    [][]byte `cbor:"cabundle"`
	PublicKey   []byte   `cbor:"public_key"`
	UserData    []byte   `cbor:"user_data"`
	Nonce       []byte   `cbor:"nonce"`
}

type pcrMap map[uint64][]byte

// decMode is the strict decoder used for every CBOR item: it refuses
// duplicate keys, indefinite lengths, tags, "undefined", unknown payload
// fields and case-insensitive key matches, and bounds nesting and sizes.
func decMode() (cbor.DecMode, error) {
	simple, err := cbor.NewSimpleValueRegistryFromDefaults(cbor.WithRejectedSimpleValue(undefinedValue))
	if err != nil {
		return nil, fmt.Errorf("attestation: internal error: %w", err)
	}
	dm, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   4,
		MaxArrayElements:  maxCABundle,
		MaxMapPairs:       maxPCRs,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		FieldNameMatching: cbor.FieldNameMatchingCaseSensitive,
		SimpleValues:      simple,
	}.DecMode()
	if err != nil {
		return nil, fmt.Errorf("attestation: internal error: %w", err)
	}
	return dm, nil
}

func decodeCOSE(doc []byte) (*coseSign1, error) {
	if len(doc) > MaxDocumentSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(doc), MaxDocumentSize)
	}
	// Tag 18 is the only tag allowed, and only around the whole message.
	if len(doc) > 0 && doc[0] == tagCOSESign1 {
		doc = doc[1:]
	}
	dm, err := decMode()
	if err != nil {
		return nil, err
	}
	var msg coseSign1
	if err := dm.Unmarshal(doc, &msg); err != nil {
		return nil, fmt.Errorf("%w: COSE_Sign1: %w", ErrMalformed, err)
	}
	if !bytes.Equal(msg.Protected, protectedES384) {
		return nil, fmt.Errorf("%w: protected header is h'%x', want h'%x' (alg ES384)", ErrUnsupportedAlgorithm, msg.Protected, protectedES384)
	}
	if !bytes.Equal(msg.Unprotected, emptyMap) {
		return nil, fmt.Errorf("%w: unprotected header is h'%x', want an empty map", ErrMalformed, []byte(msg.Unprotected))
	}
	if len(msg.Payload) == 0 {
		return nil, fmt.Errorf("%w: empty payload", ErrMalformed)
	}
	return &msg, nil
}

func decodePayload(b []byte) (*payload, error) {
	dm, err := decMode()
	if err != nil {
		return nil, err
	}
	var p payload
	if err := dm.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%w: payload: %w", ErrMalformed, err)
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// validate applies the AWS specification's syntactic checks. Sign runs it
// too, so the encoder cannot produce what the verifier refuses.
func (p *payload) validate() error {
	if p.ModuleID == "" {
		return &FieldError{Field: "module_id", Reason: "missing or empty"}
	}
	if p.Digest != "SHA384" {
		return &FieldError{Field: "digest", Reason: fmt.Sprintf("%q, want \"SHA384\"", p.Digest)}
	}
	if p.Timestamp == 0 || p.Timestamp > math.MaxInt64 {
		return &FieldError{Field: "timestamp", Reason: fmt.Sprintf("%d is not a valid time in milliseconds", p.Timestamp)}
	}
	if err := p.PCRs.validate(); err != nil {
		return err
	}
	if err := checkSize("certificate", p.Certificate, 1, maxCertSize); err != nil {
		return err
	}
	if err := validateCABundle(p.CABundle); err != nil {
		return err
	}
	return p.validateOptional()
}

func (m pcrMap) validate() error {
	if len(m) == 0 || len(m) > maxPCRs {
		return &FieldError{Field: "pcrs", Reason: fmt.Sprintf("%d entries, want 1..%d", len(m), maxPCRs)}
	}
	// Sorted, so that the error names the same PCR every time.
	for _, i := range slices.Sorted(maps.Keys(m)) {
		if i >= maxPCRs {
			return &FieldError{Field: "pcrs", Reason: fmt.Sprintf("index %d out of range 0..%d", i, maxPCRs-1)}
		}
		// The digest is always SHA384, so every PCR is 48 bytes.
		if len(m[i]) != pcrSize {
			return &FieldError{Field: "pcrs", Reason: fmt.Sprintf("PCR%d is %d bytes, want %d", i, len(m[i]), pcrSize)}
		}
	}
	return nil
}

func validateCABundle(bundle [][]byte) error {
	if len(bundle) == 0 || len(bundle) > maxCABundle {
		return &FieldError{Field: "cabundle", Reason: fmt.Sprintf("%d entries, want 1..%d", len(bundle), maxCABundle)}
	}
	for i, der := range bundle {
		if len(der) == 0 || len(der) > maxCertSize {
			return &FieldError{Field: "cabundle", Reason: fmt.Sprintf("entry %d is %d bytes, want 1..%d", i, len(der), maxCertSize)}
		}
	}
	return nil
}

func (p *payload) validateOptional() error {
	for _, f := range []struct {
		name string
		b    []byte
	}{{"public_key", p.PublicKey}, {"user_data", p.UserData}, {"nonce", p.Nonce}} {
		if err := checkSize(f.name, f.b, 0, maxOptionalSize); err != nil {
			return err
		}
	}
	return nil
}

func checkSize(field string, b []byte, lo, hi int) error {
	if len(b) < lo || len(b) > hi {
		return &FieldError{Field: field, Reason: fmt.Sprintf("%d bytes, want %d..%d", len(b), lo, hi)}
	}
	return nil
}
