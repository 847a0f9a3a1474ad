package localkms

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"

	"github.com/tmkms-nitro/tmkms-nitro/internal/attestation"
	"github.com/tmkms-nitro/tmkms-nitro/internal/cms"
	"github.com/tmkms-nitro/tmkms-nitro/internal/kmspolicy"
)

const (
	// maxAttestationDocument is AWS's limit on RecipientInfo.AttestationDocument.
	maxAttestationDocument = 262144
	// minRecipientBits is the smallest RSA key the server seals to.
	minRecipientBits     = 2048
	keyEncryptionRSAOAEP = "RSAES_OAEP_SHA_256"
)

// recipientInfo is the Recipient request parameter.
type recipientInfo struct {
	AttestationDocument    []byte `json:"AttestationDocument"`
	KeyEncryptionAlgorithm string `json:"KeyEncryptionAlgorithm"`
}

// recipient is a verified Recipient: the key to seal responses to and the
// policy condition keys its attestation document yields.
type recipient struct {
	pub     *rsa.PublicKey
	context map[string]string
}

// verifyRecipient checks the attestation document against the configured
// roots only. A nil info means no Recipient: (nil, nil).
func (s *Server) verifyRecipient(info *recipientInfo) (*recipient, error) {
	if info == nil {
		return nil, nil
	}
	if info.KeyEncryptionAlgorithm != keyEncryptionRSAOAEP {
		return nil, errValidation("1 validation error detected: Value '%s' at 'recipient.keyEncryptionAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [%s]", info.KeyEncryptionAlgorithm, keyEncryptionRSAOAEP)
	}
	n := len(info.AttestationDocument)
	if n == 0 || n > maxAttestationDocument {
		return nil, errValidation("1 validation error detected: Value at 'recipient.attestationDocument' failed to satisfy constraint: Member must have length between 1 and %d", maxAttestationDocument)
	}
	if len(s.cfg.TrustedRoots) == 0 {
		return nil, errValidation("The local KMS trusts no attestation roots; start it with the software NSM's root (--trust-root) to accept a Recipient.")
	}
	doc, err := attestation.Verify(info.AttestationDocument, attestation.Options{
		Roots: s.cfg.TrustedRoots, CurrentTime: s.cfg.Now(),
	})
	if err != nil {
		return nil, errValidation("The attestation document in the Recipient parameter is not valid: %v", err)
	}
	pub, err := recipientKey(doc.PublicKey)
	if err != nil {
		return nil, err
	}
	return &recipient{pub: pub, context: kmspolicy.RecipientContext(doc.PCRs)}, nil
}

func recipientKey(spki []byte) (*rsa.PublicKey, error) {
	if len(spki) == 0 {
		return nil, errValidation("The attestation document in the Recipient parameter has no public key.")
	}
	k, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return nil, errValidation("The public key in the attestation document is not a DER SubjectPublicKeyInfo: %v", err)
	}
	pub, ok := k.(*rsa.PublicKey)
	if !ok || pub.N.BitLen() < minRecipientBits {
		return nil, errValidation("The public key in the attestation document must be RSA with at least %d bits.", minRecipientBits)
	}
	return pub, nil
}

// seal returns plaintext sealed to the recipient; nil means no Recipient.
func (r *recipient) seal(plaintext []byte) ([]byte, error) {
	env, err := cms.Seal(plaintext, r.pub, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("localkms: failed to seal to the recipient: %w", err)
	}
	return env, nil
}
