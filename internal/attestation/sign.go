package attestation

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"

	"github.com/fxamacker/cbor/v2"
)

// scalarSize is the byte length of a P-384 scalar; ES384 signatures are
// r||s, each left-padded to this width (RFC 9053 §2.1), not DER.
const scalarSize = 48

// Sign encodes d as an attestation document in the real NSM's wire shape
// and signs it with key, the private key of d.Certificate. cabundle is
// [root, intermediates...], root first, as in real documents.
//
// The shape is: untagged COSE_Sign1, protected header a1 01 38 22, an empty
// unprotected map, payload keys in the NSM's order, PCRs in ascending order,
// and null for absent optional fields. d.Digest may be empty (meaning
// SHA384). Sign refuses anything Verify would refuse on syntax. Only the
// software NSM uses it: real documents come from the NSM itself.
func Sign(d *Document, cabundle [][]byte, key *ecdsa.PrivateKey) ([]byte, error) {
	p, err := payloadFor(d, cabundle, key)
	if err != nil {
		return nil, err
	}
	body, err := cbor.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("attestation: failed to encode payload: %w", err)
	}
	sig, err := signES384(key, protectedES384, body)
	if err != nil {
		return nil, err
	}
	doc, err := cbor.Marshal(coseSign1{
		Protected:   protectedES384,
		Unprotected: emptyMap,
		Payload:     body,
		Signature:   sig,
	})
	if err != nil {
		return nil, fmt.Errorf("attestation: failed to encode COSE_Sign1: %w", err)
	}
	if len(doc) > MaxDocumentSize {
		return nil, fmt.Errorf("attestation: document is %d bytes, limit %d", len(doc), MaxDocumentSize)
	}
	return doc, nil
}

func payloadFor(d *Document, cabundle [][]byte, key *ecdsa.PrivateKey) (*payload, error) {
	if d == nil || d.Certificate == nil || key == nil {
		return nil, errors.New("attestation: Sign needs a document, its certificate and the certificate's key")
	}
	if err := checkLeaf(d.Certificate); err != nil {
		return nil, err
	}
	if !key.PublicKey.Equal(d.Certificate.PublicKey) {
		return nil, errors.New("attestation: signing key does not match the document's certificate")
	}
	ms := d.Timestamp.UnixMilli()
	if ms <= 0 {
		return nil, &FieldError{Field: "timestamp", Reason: fmt.Sprintf("%v is not after the Unix epoch", d.Timestamp)}
	}
	pcrs, err := pcrsFromDocument(d.PCRs)
	if err != nil {
		return nil, err
	}
	p := &payload{
		ModuleID:    d.ModuleID,
		Digest:      d.Digest,
		Timestamp:   uint64(ms),
		PCRs:        pcrs,
		Certificate: d.Certificate.Raw,
		CABundle:    cabundle,
		PublicKey:   clone(d.PublicKey),
		UserData:    clone(d.UserData),
		Nonce:       clone(d.Nonce),
	}
	if p.Digest == "" {
		p.Digest = "SHA384"
	}
	return p, p.validate()
}

func pcrsFromDocument(m map[int][]byte) (pcrMap, error) {
	out := make(pcrMap, len(m))
	for i, v := range m {
		if i < 0 || i >= maxPCRs {
			return nil, &FieldError{Field: "pcrs", Reason: fmt.Sprintf("index %d out of range 0..%d", i, maxPCRs-1)}
		}
		out[uint64(i)] = v
	}
	return out, nil
}

// MarshalCBOR writes PCRs in ascending index order, as the NSM's BTreeMap
// does; Go map order would make documents non-deterministic.
func (m pcrMap) MarshalCBOR() ([]byte, error) {
	em, err := cbor.EncOptions{Sort: cbor.SortCanonical}.EncMode()
	if err != nil {
		return nil, err
	}
	return em.Marshal(map[uint64][]byte(m))
}

func signES384(key *ecdsa.PrivateKey, protected, body []byte) ([]byte, error) {
	digest, err := sigDigest(protected, body)
	if err != nil {
		return nil, err
	}
	r, s, err := ecdsa.Sign(rand.Reader, key, digest)
	if err != nil {
		return nil, fmt.Errorf("attestation: failed to sign: %w", err)
	}
	sig := make([]byte, 2*scalarSize)
	r.FillBytes(sig[:scalarSize])
	s.FillBytes(sig[scalarSize:])
	return sig, nil
}

// verifySignature checks the ES384 signature; leaf has passed checkLeaf.
func verifySignature(leaf *x509.Certificate, protected, body, sig []byte) error {
	if len(sig) != 2*scalarSize {
		return fmt.Errorf("%w: signature is %d bytes, want %d (r||s)", ErrBadSignature, len(sig), 2*scalarSize)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: leaf key is %s, want ECDSA P-384", ErrUnsupportedAlgorithm, describeKey(leaf.PublicKey))
	}
	digest, err := sigDigest(protected, body)
	if err != nil {
		return err
	}
	r := new(big.Int).SetBytes(sig[:scalarSize])
	s := new(big.Int).SetBytes(sig[scalarSize:])
	if !ecdsa.Verify(pub, digest, r, s) {
		return fmt.Errorf("%w: signature does not verify with the leaf key", ErrBadSignature)
	}
	return nil
}

// sigDigest hashes the Sig_structure.
func sigDigest(protected, body []byte) ([]byte, error) {
	tbs, err := sigStructure(protected, body)
	if err != nil {
		return nil, err
	}
	sum := sha512.Sum384(tbs)
	return sum[:], nil
}

// sigStructure is RFC 9052's Sig_structure for COSE_Sign1 with empty
// external AAD: ["Signature1", protected, h”, payload].
func sigStructure(protected, body []byte) ([]byte, error) {
	tbs, err := cbor.Marshal([]any{"Signature1", protected, []byte{}, body})
	if err != nil {
		return nil, fmt.Errorf("attestation: failed to encode Sig_structure: %w", err)
	}
	return tbs, nil
}
