package enclave

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/kms"
	"github.com/tmkms-nitro/tmkms-nitro/internal/nsm"
	"github.com/tmkms-nitro/tmkms-nitro/internal/sealedkey"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
)

// errKeyMismatch marks a sealed key that is not what its file claims.
var errKeyMismatch = errors.New("sealed key does not match its recorded public key")

// seal makes a key (a new one, or seed when importing) and seals it with
// KMS from inside the enclave; the seed never leaves the enclave except as
// KMS ciphertext. The answer carries an attestation document whose user
// data binds the public key, the KMS key and the sealed file.
func (e *Enclave) seal(ctx context.Context, region, keyID, purpose string, creds enclaveproto.Credentials, seed []byte) (*enclaveproto.GeneratedKey, error) {
	kc, err := e.kms(region, creds)
	if err != nil {
		return nil, err
	}
	var key *signer.Ed25519
	if seed == nil {
		key, err = signer.GenerateEd25519()
	} else {
		key, err = signer.NewEd25519(seed)
	}
	if err != nil {
		return nil, err
	}
	pub := key.PubKey().Bytes()
	ct, err := kc.Encrypt(ctx, keyID, key.Seed(), sealedkey.Context(purpose, pub))
	if err != nil {
		return nil, err
	}
	file, err := sealedkey.Marshal(&sealedkey.Key{Version: 1, Purpose: purpose, KeyType: "ed25519", PublicKey: pub, KMSKeyID: keyID, Region: region, Ciphertext: ct})
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(file)
	userData, err := json.Marshal(map[string]string{
		"public_key":        hex.EncodeToString(pub),
		"kms_key_id":        keyID,
		"sealed_key_sha256": hex.EncodeToString(sum[:]),
	})
	if err != nil {
		return nil, err
	}
	doc, err := e.p.NSM.Attest(ctx, nsm.AttestRequest{UserData: userData})
	if err != nil {
		return nil, fmt.Errorf("failed to attest the new key: %w", err)
	}
	e.log.Info("sealed a key with KMS", "purpose", purpose, "public_key", hex.EncodeToString(pub), "kms_key_id", keyID)
	return &enclaveproto.GeneratedKey{SealedKey: file, PubKey: pub, Attestation: doc}, nil
}

// unseal decrypts a sealed key file through KMS with a Recipient
// attestation, so that only this enclave image can read the plaintext, and
// checks that the key is the one the file records. pinned, when set, is the
// only KMS key the operator allows.
func (e *Enclave) unseal(ctx context.Context, kc *kms.Client, file []byte, purpose, pinned string) (*signer.Ed25519, error) {
	sk, err := sealedkey.Parse(file)
	if err != nil {
		return nil, err
	}
	keyID := sk.KMSKeyID
	switch {
	case sk.Legacy() && pinned == "":
		return nil, errors.New("a tmkms-light sealed key does not record its KMS key: set kms_key_id in tmkms.toml")
	case sk.Legacy():
		keyID = pinned
	case pinned != "" && !sameKey(pinned, sk.KMSKeyID):
		return nil, fmt.Errorf("the sealed %s key is for KMS key %q, but kms_key_id pins %q", purpose, sk.KMSKeyID, pinned)
	case sk.Purpose != purpose:
		return nil, fmt.Errorf("the sealed key is a %s key, not a %s key", sk.Purpose, purpose)
	}
	// A fresh key and document per request: KMS refuses stale documents.
	r, err := kms.NewRecipient(ctx, e.p.NSM, nil, nil)
	if err != nil {
		return nil, err
	}
	seed, err := kc.Decrypt(ctx, sk.Ciphertext, keyID, sk.EncryptionContext(), r)
	if err != nil {
		return nil, err
	}
	defer clear(seed)
	key, err := signer.NewEd25519(seed)
	if err != nil {
		return nil, err
	}
	if !sk.Legacy() && !bytes.Equal(key.PubKey().Bytes(), sk.PublicKey) {
		return nil, errKeyMismatch
	}
	return key, nil
}

// sameKey compares a configured key reference (id, alias-free ARN) with
// the ARN recorded at sealing time.
func sameKey(ref, arn string) bool {
	return ref == arn || strings.HasSuffix(arn, ":key/"+ref)
}

// kms returns a client for region signing with creds.
func (e *Enclave) kms(region string, creds enclaveproto.Credentials) (*kms.Client, error) {
	if err := e.creds.Set(awsCreds(creds)); err != nil {
		return nil, err
	}
	return kms.New(kms.Config{Region: region, Endpoint: e.p.KMSEndpoint, Dial: e.p.KMSDial, Roots: e.p.KMSRoots, Credentials: e.creds})
}

func awsCreds(c enclaveproto.Credentials) aws.Credentials {
	return aws.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken,
		CanExpire: !c.Expiration.IsZero(), Expires: c.Expiration}
}
