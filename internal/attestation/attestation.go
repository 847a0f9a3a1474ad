// Package attestation verifies and encodes AWS Nitro Enclaves attestation
// documents: a COSE_Sign1 (untagged, or with tag 18) whose CBOR payload is
// signed with ES384 by a leaf certificate that chains to a pinned root.
//
// It trusts only the roots it is given: the AWS Nitro Enclaves root embedded
// in this package, checked against its published SHA-256 fingerprint, unless
// the caller explicitly passes other roots in Options (local mode with the
// software NSM). It checks syntax, chain and signature; policy (which PCRs,
// which nonce, which public key) is the caller's job.
//
// It must never return a Document that failed a check, never return a
// partial Document together with an error, and never panic on crafted input.
package attestation

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// MaxDocumentSize is the largest document Verify accepts. It is the NSM
// driver's response buffer (0x3000 bytes): no genuine document can be larger.
const MaxDocumentSize = 0x3000

// Sentinel errors, one per class of refusal. Every error returned by Verify
// matches exactly one of them with errors.Is.
var (
	// ErrMalformed: not a well-formed COSE_Sign1 attestation document
	// (CBOR syntax, duplicate keys, indefinite lengths, sizes, missing or
	// out-of-range fields). Field problems are reported as *FieldError.
	ErrMalformed = errors.New("attestation: malformed document")
	// ErrUnsupportedAlgorithm: the protected header is not exactly ES384, or
	// the leaf is not an ECDSA P-384 key signed with ecdsa-with-SHA384.
	ErrUnsupportedAlgorithm = errors.New("attestation: unsupported algorithm")
	// ErrUntrustedChain: the certificate chain does not lead to a trusted root.
	ErrUntrustedChain = errors.New("attestation: untrusted certificate chain")
	// ErrExpired: the chain is trusted but a certificate is not valid at the
	// verification time.
	ErrExpired = errors.New("attestation: certificate expired or not yet valid")
	// ErrBadSignature: the COSE signature does not verify with the leaf key.
	ErrBadSignature = errors.New("attestation: bad signature")
)

// FieldError reports a payload field that is missing, of the wrong size or
// out of range. It matches ErrMalformed with errors.Is.
type FieldError struct {
	Field  string // CBOR key in the payload, e.g. "pcrs"
	Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("attestation: malformed document: field %q: %s", e.Field, e.Reason)
}

// Unwrap makes errors.Is(err, ErrMalformed) true.
func (e *FieldError) Unwrap() error { return ErrMalformed }

// Document is the verified content of an attestation document.
type Document struct {
	ModuleID    string
	Timestamp   time.Time
	Digest      string         // always "SHA384"
	PCRs        map[int][]byte // index → 48-byte value
	Certificate *x509.Certificate
	// Optional fields; nil when absent (CBOR null, omitted or empty).
	PublicKey, UserData, Nonce []byte
}

// Options controls Verify.
type Options struct {
	// Roots are the trusted roots. Empty means the embedded AWS Nitro
	// Enclaves root; anything else must be passed deliberately.
	Roots []*x509.Certificate
	// CurrentTime is the time at which the chain must be valid. Zero means
	// time.Now(). Only offline test vectors should use the document's own
	// timestamp: the leaf's few hours of validity are the freshness bound.
	CurrentTime time.Time
}

// Verify decodes doc, checks it, and returns its content. It returns either
// a Document or an error, never both.
func Verify(doc []byte, opts Options) (*Document, error) {
	msg, err := decodeCOSE(doc)
	if err != nil {
		return nil, err
	}
	p, err := decodePayload(msg.Payload)
	if err != nil {
		return nil, err
	}
	roots, err := trustedRoots(opts.Roots)
	if err != nil {
		return nil, err
	}
	leaf, err := verifyChain(p, roots, verificationTime(opts.CurrentTime))
	if err != nil {
		return nil, err
	}
	if err := verifySignature(leaf, msg.Protected, msg.Payload, msg.Signature); err != nil {
		return nil, err
	}
	return p.document(leaf), nil
}

func verificationTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

// document converts a checked payload. The caller's Document shares no
// memory with the input buffer.
func (p *payload) document(leaf *x509.Certificate) *Document {
	pcrs := make(map[int][]byte, len(p.PCRs))
	for i, v := range p.PCRs {
		pcrs[int(i)] = clone(v)
	}
	return &Document{
		ModuleID:    p.ModuleID,
		Timestamp:   time.UnixMilli(int64(p.Timestamp)).UTC(),
		Digest:      p.Digest,
		PCRs:        pcrs,
		Certificate: leaf,
		PublicKey:   clone(p.PublicKey),
		UserData:    clone(p.UserData),
		Nonce:       clone(p.Nonce),
	}
}

// clone copies b, mapping empty to nil so that "absent" has one spelling.
func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}
