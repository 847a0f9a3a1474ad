package kms

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/tmkms-nitro/tmkms-nitro/internal/cms"
)

// DataKeySize is the size of the data keys GenerateDataKey returns: an
// ed25519 seed or an AES-256 key.
const DataKeySize = 32

// Decrypt decrypts a ciphertext blob made by keyID under encCtx. With a
// Recipient, KMS returns the plaintext sealed to r's attested key and only r
// can open it; a response carrying a bare Plaintext is refused. Without
// one (r nil) the plaintext travels inside TLS only, which key policies for
// enclave keys deny.
func (c *Client) Decrypt(ctx context.Context, ciphertext []byte, keyID string, encCtx map[string]string, r *Recipient) ([]byte, error) {
	const op = "Decrypt"
	if err := c.precheck(op, keyID, r); err != nil {
		return nil, err
	}
	out, err := c.api.Decrypt(ctx, &kms.DecryptInput{
		CiphertextBlob: ciphertext, KeyId: aws.String(keyID), EncryptionContext: encCtx, Recipient: recipientInfo(r),
	})
	if err != nil {
		return nil, classify(op, err)
	}
	if err := c.pin(op, keyID, out.KeyId); err != nil {
		return nil, err
	}
	return reveal(op, out.Plaintext, out.CiphertextForRecipient, r)
}

// Encrypt encrypts plaintext (at most 4096 bytes) under keyID, bound to
// encCtx, and returns the ciphertext blob and the key's ARN as KMS named it.
func (c *Client) Encrypt(ctx context.Context, keyID string, plaintext []byte, encCtx map[string]string) (ciphertext []byte, arn string, err error) {
	const op = "Encrypt"
	if err := c.precheck(op, keyID, nil); err != nil {
		return nil, "", err
	}
	out, err := c.api.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: plaintext, EncryptionContext: encCtx})
	if err != nil {
		return nil, "", classify(op, err)
	}
	if err := c.pin(op, keyID, out.KeyId); err != nil {
		return nil, "", err
	}
	if len(out.CiphertextBlob) == 0 {
		return nil, "", newError(op, ErrBadResponse, "no ciphertext in response")
	}
	return out.CiphertextBlob, *out.KeyId, nil
}

// GenerateDataKey returns a fresh DataKeySize-byte key and its ciphertext
// blob under keyID and encCtx. With a Recipient the plaintext key reaches
// only r, as with Decrypt. arn is the key's ARN as KMS named it.
func (c *Client) GenerateDataKey(ctx context.Context, keyID string, encCtx map[string]string, r *Recipient) (plaintext, ciphertext []byte, arn string, err error) {
	const op = "GenerateDataKey"
	if err := c.precheck(op, keyID, r); err != nil {
		return nil, nil, "", err
	}
	out, err := c.api.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId: aws.String(keyID), NumberOfBytes: aws.Int32(DataKeySize), EncryptionContext: encCtx, Recipient: recipientInfo(r),
	})
	if err != nil {
		return nil, nil, "", classify(op, err)
	}
	if err := c.pin(op, keyID, out.KeyId); err != nil {
		return nil, nil, "", err
	}
	if len(out.CiphertextBlob) == 0 {
		return nil, nil, "", newError(op, ErrBadResponse, "no ciphertext in response")
	}
	pt, err := reveal(op, out.Plaintext, out.CiphertextForRecipient, r)
	if err != nil {
		return nil, nil, "", err
	}
	if len(pt) != DataKeySize {
		return nil, nil, "", newError(op, ErrBadResponse, "data key is %d bytes, want %d", len(pt), DataKeySize)
	}
	return pt, out.CiphertextBlob, *out.KeyId, nil
}

// GenerateRandom returns n (1..1024) random bytes from KMS, sealed to r if
// r is not nil.
func (c *Client) GenerateRandom(ctx context.Context, n int, r *Recipient) ([]byte, error) {
	const op = "GenerateRandom"
	if n < 1 || n > 1024 {
		return nil, newError(op, ErrInvalidRequest, "cannot ask for %d random bytes: 1..1024", n)
	}
	if r != nil {
		if err := r.check(); err != nil {
			return nil, &Error{Op: op, Kind: ErrInvalidRequest, Err: err}
		}
	}
	out, err := c.api.GenerateRandom(ctx, &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(int32(n)), Recipient: recipientInfo(r)})
	if err != nil {
		return nil, classify(op, err)
	}
	b, err := reveal(op, out.Plaintext, out.CiphertextForRecipient, r)
	if err != nil {
		return nil, err
	}
	if len(b) != n {
		return nil, newError(op, ErrBadResponse, "got %d random bytes, want %d", len(b), n)
	}
	return b, nil
}

func (c *Client) precheck(op, keyID string, r *Recipient) error {
	if err := checkKeyRef(keyID); err != nil {
		return &Error{Op: op, Kind: ErrInvalidRequest, Err: err}
	}
	if r != nil {
		if err := r.check(); err != nil {
			return &Error{Op: op, Kind: ErrInvalidRequest, Err: err}
		}
	}
	return nil
}

// pin refuses a response for another key than the one asked for.
func (c *Client) pin(op, keyID string, got *string) error {
	if got == nil || !keyMatches(keyID, c.region, *got) {
		return newError(op, ErrWrongKey, "response is for key %q, not %q", aws.ToString(got), keyID)
	}
	return nil
}

func recipientInfo(r *Recipient) *types.RecipientInfo {
	if r == nil {
		return nil
	}
	return &types.RecipientInfo{
		AttestationDocument:    r.AttestationDocument,
		KeyEncryptionAlgorithm: types.KeyEncryptionMechanismRsaesOaepSha256,
	}
}

// reveal returns the plaintext of a response. With a Recipient it must be
// in the envelope only: a bare Plaintext would mean the secret crossed the
// host-visible path in a form the enclave did not ask for.
func reveal(op string, plaintext, envelope []byte, r *Recipient) ([]byte, error) {
	if r == nil {
		if len(envelope) != 0 || len(plaintext) == 0 {
			return nil, newError(op, ErrBadResponse, "response without a Recipient must carry Plaintext only")
		}
		return plaintext, nil
	}
	if len(plaintext) != 0 {
		return nil, newError(op, ErrBadResponse, "response carries a Plaintext although a Recipient was sent")
	}
	if len(envelope) == 0 {
		return nil, newError(op, ErrBadResponse, "response carries no CiphertextForRecipient")
	}
	pt, err := cms.Open(envelope, r.Key)
	if err != nil {
		return nil, &Error{Op: op, Kind: ErrBadResponse, Err: err}
	}
	return pt, nil
}
