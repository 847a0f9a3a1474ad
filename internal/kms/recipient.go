package kms

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/tmkms-nitro/tmkms-nitro/internal/nsm"
)

// recipientBits is the size of the ephemeral key KMS seals to: RSA-2048, as
// the Nitro Enclaves SDK uses.
const recipientBits = 2048

// Recipient is the enclave's side of a Recipient request: an attestation
// document whose public_key is Key's public half, and Key, which opens what
// KMS seals to it. Create a fresh one per enclave boot; Key never leaves the
// enclave.
type Recipient struct {
	AttestationDocument []byte
	Key                 *rsa.PrivateKey
}

// NewRecipient generates an ephemeral RSA-2048 key and asks m for an
// attestation document carrying its DER SubjectPublicKeyInfo. userData and
// nonce are optional and go into the document as is.
func NewRecipient(ctx context.Context, m nsm.NSM, userData, nonce []byte) (*Recipient, error) {
	key, err := rsa.GenerateKey(rand.Reader, recipientBits)
	if err != nil {
		return nil, fmt.Errorf("kms: failed to generate recipient key: %w", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("kms: failed to encode recipient key: %w", err)
	}
	doc, err := m.Attest(ctx, nsm.AttestRequest{PublicKey: spki, UserData: userData, Nonce: nonce})
	if err != nil {
		return nil, fmt.Errorf("kms: failed to attest recipient key: %w", err)
	}
	return &Recipient{AttestationDocument: doc, Key: key}, nil
}

func (r *Recipient) check() error {
	if len(r.AttestationDocument) == 0 || r.Key == nil {
		return errors.New("kms: recipient needs an attestation document and its private key")
	}
	return nil
}

// String and GoString keep the private key out of logs.
func (r *Recipient) String() string {
	return fmt.Sprintf("kms.Recipient{AttestationDocument:%d bytes Key:redacted}", len(r.AttestationDocument))
}

func (r *Recipient) GoString() string { return r.String() }
