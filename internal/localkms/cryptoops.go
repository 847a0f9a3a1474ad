package localkms

import (
	"crypto/rand"
	"fmt"
)

const symmetricDefault = "SYMMETRIC_DEFAULT"

// maxRandomBytes is AWS's limit on GenerateRandom and GenerateDataKey's
// NumberOfBytes.
const maxRandomBytes = 1024

// plaintextOut is the part of a response that carries a secret: Plaintext
// without a Recipient, CiphertextForRecipient with one, never both.
type plaintextOut struct {
	Plaintext              []byte `json:",omitempty"`
	CiphertextForRecipient []byte `json:",omitempty"`
}

func release(plaintext []byte, r *recipient) (plaintextOut, error) {
	if r == nil {
		return plaintextOut{Plaintext: plaintext}, nil
	}
	env, err := r.seal(plaintext)
	if err != nil {
		return plaintextOut{}, err
	}
	return plaintextOut{CiphertextForRecipient: env}, nil
}

func (s *Server) encrypt(principal string, body []byte) (any, error) {
	var in struct {
		KeyId               string
		Plaintext           []byte
		EncryptionContext   map[string]string
		EncryptionAlgorithm string
		GrantTokens         []string
	}
	if err := decodeInput(body, &in); err != nil {
		return nil, err
	}
	if len(in.Plaintext) == 0 || len(in.Plaintext) > maxPlaintext {
		return nil, errValidation("1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length between 1 and %d", maxPlaintext)
	}
	if !oneOf(in.EncryptionAlgorithm, "", symmetricDefault) {
		return nil, errUnsupported("The local KMS only supports the %s encryption algorithm.", symmetricDefault)
	}
	k, err := s.lookup(in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(principal, "kms:Encrypt", k, in.EncryptionContext, nil); err != nil {
		return nil, err
	}
	ct, err := sealBlob(k, in.Plaintext, in.EncryptionContext)
	if err != nil {
		return nil, err
	}
	return struct {
		CiphertextBlob             []byte
		KeyId, EncryptionAlgorithm string
	}{ct, k.ARN, symmetricDefault}, nil
}

func (s *Server) decrypt(principal string, body []byte) (any, error) {
	var in struct {
		CiphertextBlob      []byte
		KeyId               string
		EncryptionContext   map[string]string
		EncryptionAlgorithm string
		Recipient           *recipientInfo
		GrantTokens         []string
	}
	if err := decodeInput(body, &in); err != nil {
		return nil, err
	}
	if !oneOf(in.EncryptionAlgorithm, "", symmetricDefault) {
		return nil, errUnsupported("The local KMS only supports the %s encryption algorithm.", symmetricDefault)
	}
	b, err := parseBlob(in.CiphertextBlob)
	if err != nil {
		return nil, err
	}
	k, err := s.blobKey(b, in.KeyId)
	if err != nil {
		return nil, err
	}
	r, err := s.verifyRecipient(in.Recipient)
	if err != nil {
		return nil, err
	}
	// Authorize before decrypting, so that a denied caller learns nothing
	// about the ciphertext, not even whether its context is right.
	if err := s.authorize(principal, "kms:Decrypt", k, in.EncryptionContext, r); err != nil {
		return nil, err
	}
	pt, err := openBlob(k, b, in.EncryptionContext)
	if err != nil {
		return nil, err
	}
	out, err := release(pt, r)
	if err != nil {
		return nil, err
	}
	return struct {
		KeyId, EncryptionAlgorithm string
		plaintextOut
	}{k.ARN, symmetricDefault, out}, nil
}

// blobKey returns the key a blob was made with, which must be the one the
// request names if it names one.
func (s *Server) blobKey(b *blob, ref string) (*key, error) {
	if ref != "" {
		want, err := s.lookup(ref)
		if err != nil {
			return nil, err
		}
		if want.KeyID != b.keyID {
			return nil, errIncorrectKey("The key ID in the request does not identify the KMS key the ciphertext was encrypted with.")
		}
		return want, nil
	}
	k, err := s.lookup(b.keyID)
	if err != nil {
		return nil, errInvalidCiphertext("The ciphertext refers to a KMS key that does not exist in this local KMS.")
	}
	return k, nil
}

func (s *Server) generateDataKey(principal string, body []byte) (any, error) {
	var in struct {
		KeyId, KeySpec    string
		NumberOfBytes     *int
		EncryptionContext map[string]string
		Recipient         *recipientInfo
		GrantTokens       []string
	}
	if err := decodeInput(body, &in); err != nil {
		return nil, err
	}
	n, err := dataKeySize(in.KeySpec, in.NumberOfBytes)
	if err != nil {
		return nil, err
	}
	k, err := s.lookup(in.KeyId)
	if err != nil {
		return nil, err
	}
	r, err := s.verifyRecipient(in.Recipient)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(principal, "kms:GenerateDataKey", k, in.EncryptionContext, r); err != nil {
		return nil, err
	}
	dk, err := randomBytes(n)
	if err != nil {
		return nil, err
	}
	ct, err := sealBlob(k, dk, in.EncryptionContext)
	if err != nil {
		return nil, err
	}
	out, err := release(dk, r)
	if err != nil {
		return nil, err
	}
	return struct {
		CiphertextBlob []byte
		KeyId          string
		plaintextOut
	}{ct, k.ARN, out}, nil
}

func dataKeySize(spec string, n *int) (int, error) {
	switch {
	case spec != "" && n != nil:
		return 0, errValidation("Specify either KeySpec or NumberOfBytes, not both.")
	case spec == "AES_256":
		return 32, nil
	case spec == "AES_128":
		return 16, nil
	case spec != "":
		return 0, errValidation("KeySpec must be AES_256 or AES_128, not %q.", spec)
	case n == nil:
		return 0, errValidation("Specify either KeySpec or NumberOfBytes.")
	case *n < 1 || *n > maxRandomBytes:
		return 0, errValidation("NumberOfBytes must be between 1 and %d.", maxRandomBytes)
	}
	return *n, nil
}

// generateRandom is authorized by IAM policies alone in AWS, since no key
// is involved; here every authenticated caller may use it.
func (s *Server) generateRandom(_ string, body []byte) (any, error) {
	var in struct {
		NumberOfBytes *int
		Recipient     *recipientInfo
	}
	if err := decodeInput(body, &in); err != nil {
		return nil, err
	}
	if in.NumberOfBytes == nil || *in.NumberOfBytes < 1 || *in.NumberOfBytes > maxRandomBytes {
		return nil, errValidation("NumberOfBytes must be between 1 and %d.", maxRandomBytes)
	}
	r, err := s.verifyRecipient(in.Recipient)
	if err != nil {
		return nil, err
	}
	b, err := randomBytes(*in.NumberOfBytes)
	if err != nil {
		return nil, err
	}
	return release(b, r)
}

func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("localkms: failed to generate random bytes: %w", err)
	}
	return b, nil
}
