package enclave

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/fxamacker/cbor/v2"

	"github.com/tmkms-nitro/tmkms-nitro/internal/anchor"
	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/kms"
	"github.com/tmkms-nitro/tmkms-nitro/internal/nsm"
	"github.com/tmkms-nitro/tmkms-nitro/internal/sealedkey"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
)

// errKeyMismatch marks a sealed key that is not what its file claims.
var errKeyMismatch = errors.New("sealed key does not match its recorded public key and type")

// seal makes a key of keyType and seals it with KMS from inside the
// enclave. A new key
// is a KMS data key released only to this attested enclave (the instance
// role has no kms:Encrypt, so a host cannot choose a key's plaintext); an
// imported one (seed set) is sealed with kms:Encrypt under the credentials
// the operator passed for the ceremony. The answer carries an attestation
// document whose user data states what was sealed and how (attestedKey).
func (e *Enclave) seal(ctx context.Context, region, keyID, purpose, keyType string, creds enclaveproto.Credentials, seed []byte, b enclaveproto.Binding) (*enclaveproto.GeneratedKey, error) {
	kc, err := e.kms(region, creds)
	if err != nil {
		return nil, err
	}
	defer kc.Close()
	sk := &sealedkey.Key{Version: 2, Purpose: purpose, KeyType: keyType, KMSKeyID: keyID, Region: region,
		Origin: sealedkey.Imported, ChainIDs: b.ChainIDs, Anchor: b.Anchor}
	var key signer.Sealable
	if seed == nil {
		sk.Origin = sealedkey.Generated
		r, err := kms.NewRecipient(ctx, e.p.NSM, nil, nil)
		if err != nil {
			return nil, err
		}
		var dk []byte
		if dk, sk.Ciphertext, sk.KMSKeyID, err = kc.GenerateDataKey(ctx, keyID, sk.EncryptionContext(), r); err != nil {
			return nil, err
		}
		defer clear(dk)
		// A secp256k1 key from 32 random bytes fails only for a scalar of
		// 0 or at least the order, with probability about 2^-128.
		if key, err = signer.NewKey(keyType, dk); err != nil {
			return nil, err
		}
		sk.PublicKey = key.PubKey().Bytes
	} else {
		if key, err = signer.NewKey(keyType, seed); err != nil {
			return nil, err
		}
		sk.PublicKey = key.PubKey().Bytes
		if sk.Ciphertext, sk.KMSKeyID, err = kc.Encrypt(ctx, keyID, key.Seed(), sk.EncryptionContext()); err != nil {
			return nil, err
		}
	}
	return e.attested(ctx, sk, b.Nonce)
}

// sealAnchor seals the anchor's credentials: a KMS data key released only
// to this enclave encrypts them here, bound to the anchor's fingerprint.
func (e *Enclave) sealAnchor(ctx context.Context, m *enclaveproto.SealAnchor) (*enclaveproto.GeneratedKey, error) {
	b := &anchor.Bundle{Endpoints: m.Endpoints, CA: m.CA, Cert: m.Cert, Key: m.Key, Username: m.Username, Password: string(m.Password), Prefix: m.Prefix}
	if err := b.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadConfig, err)
	}
	fp, err := b.Fingerprint()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadConfig, err)
	}
	kc, err := e.kms(m.Region, m.Credentials)
	if err != nil {
		return nil, err
	}
	defer kc.Close()
	sk := &sealedkey.Key{Version: 2, Purpose: sealedkey.Anchor, Origin: sealedkey.Generated, Anchor: fp, KMSKeyID: m.KMSKeyID, Region: m.Region}
	r, err := kms.NewRecipient(ctx, e.p.NSM, nil, nil)
	if err != nil {
		return nil, err
	}
	dk, ct, arn, err := kc.GenerateDataKey(ctx, m.KMSKeyID, sk.EncryptionContext(), r)
	if err != nil {
		return nil, err
	}
	defer clear(dk)
	sk.Ciphertext, sk.KMSKeyID = ct, arn
	plain, err := cbor.Marshal(b)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	if sk.Sealed, err = aeadSeal(dk, plain, fp); err != nil {
		return nil, err
	}
	return e.attested(ctx, sk, m.Nonce)
}

// attested encodes a sealed file and attests it: the user data binds the
// public key (none for an anchor), the KMS key's ARN as KMS reported it,
// the origin, the chains, the anchor and the file's SHA-256; the document's
// nonce is the operator's. verify-attestation checks each on a trusted
// machine before the key is registered on chain.
func (e *Enclave) attested(ctx context.Context, sk *sealedkey.Key, nonce []byte) (*enclaveproto.GeneratedKey, error) {
	file, err := sealedkey.Marshal(sk)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(file)
	chains := sk.ChainIDs
	if chains == nil {
		chains = []string{}
	}
	st := AttestedKey{
		PublicKey: hex.EncodeToString(sk.PublicKey), KMSKeyID: sk.KMSKeyID, SealedKeySHA256: hex.EncodeToString(sum[:]),
		Origin: sk.Origin, ChainIDs: chains, Anchor: sk.Anchor,
	}
	if sk.KeyType != signer.KeyTypeEd25519 {
		// Omitted for ed25519 (and anchors): verifiers that predate key
		// types refuse statements with fields they do not know.
		st.KeyType = sk.KeyType
	}
	userData, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	doc, err := e.p.NSM.Attest(ctx, nsm.AttestRequest{UserData: userData, Nonce: nonce})
	if err != nil {
		return nil, fmt.Errorf("failed to attest the sealed %s: %w", sk.Purpose, err)
	}
	e.log.Info("sealed with KMS", "purpose", sk.Purpose, "origin", sk.Origin, "key_type", sk.KeyType, "public_key", hex.EncodeToString(sk.PublicKey),
		"kms_key_id", sk.KMSKeyID, "chain_ids", sk.ChainIDs, "anchor", sk.Anchor)
	gk := &enclaveproto.GeneratedKey{SealedKey: file, PubKey: sk.PublicKey, Attestation: doc}
	if sk.KeyType != signer.KeyTypeEd25519 {
		gk.KeyType = sk.KeyType // omitted for ed25519, which older helpers expect
	}
	return gk, nil
}

// AttestedKey is the user data of the attestation document of a sealed
// key or anchor.
type AttestedKey struct {
	PublicKey       string   `json:"public_key"`         // hex; "" for an anchor
	KeyType         string   `json:"key_type,omitempty"` // the public key's; "" for ed25519 and an anchor
	KMSKeyID        string   `json:"kms_key_id"`
	SealedKeySHA256 string   `json:"sealed_key_sha256"`
	Origin          string   `json:"origin"`
	ChainIDs        []string `json:"chain_ids"`
	Anchor          string   `json:"anchor"`
}

// unseal decrypts a sealed key file through KMS with a Recipient
// attestation, so that only this enclave image can read the plaintext, and
// checks that the key is the one the file records: made as the recorded
// type, its public key must be the recorded one, which the same seed read
// as another type never gives. pinned, when set, is the
// only KMS key the operator allows. It returns the file too: what the key
// is bound to (chains, anchor) is authenticated by KMS through the
// encryption context.
func (e *Enclave) unseal(ctx context.Context, kc *kms.Client, file []byte, purpose, pinned string) (signer.Sealable, *sealedkey.Key, error) {
	sk, seed, err := e.decrypt(ctx, kc, file, purpose, pinned)
	if err != nil {
		return nil, nil, err
	}
	defer clear(seed)
	key, err := signer.NewKey(sk.KeyType, seed)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errKeyMismatch, err)
	}
	if pub := key.PubKey(); !sk.Legacy() && (pub.Type != sk.KeyType || !bytes.Equal(pub.Bytes, sk.PublicKey)) {
		return nil, nil, errKeyMismatch
	}
	return key, sk, nil
}

// unsealAnchor opens a sealed anchor file: the data key through KMS, then
// the credentials it encrypts here.
func (e *Enclave) unsealAnchor(ctx context.Context, kc *kms.Client, file []byte, pinned string) (*anchor.Bundle, string, error) {
	sk, dk, err := e.decrypt(ctx, kc, file, sealedkey.Anchor, pinned)
	if err != nil {
		return nil, "", err
	}
	defer clear(dk)
	plain, err := aeadOpen(dk, sk.Sealed, sk.Anchor)
	if err != nil {
		return nil, "", err
	}
	defer clear(plain)
	var b anchor.Bundle
	if err := cbor.Unmarshal(plain, &b); err != nil {
		return nil, "", fmt.Errorf("the sealed anchor does not decode: %w", err)
	}
	if fp, err := b.Fingerprint(); err != nil || fp != sk.Anchor {
		return nil, "", fmt.Errorf("the sealed anchor's credentials are not those of its fingerprint %s", sk.Anchor)
	}
	return &b, sk.Anchor, b.Validate()
}

// decrypt parses a sealed file and has KMS release its plaintext to this
// enclave alone.
func (e *Enclave) decrypt(ctx context.Context, kc *kms.Client, file []byte, purpose, pinned string) (*sealedkey.Key, []byte, error) {
	sk, err := sealedkey.Parse(file)
	if err != nil {
		return nil, nil, err
	}
	keyID := sk.KMSKeyID
	switch {
	case sk.Legacy() && pinned == "":
		return nil, nil, errors.New("a tmkms-light sealed key does not record its KMS key: set kms_key_id in tmkms.toml")
	case sk.Legacy():
		keyID = pinned
	case pinned != "" && !sameKey(pinned, sk.KMSKeyID):
		return nil, nil, fmt.Errorf("the sealed %s key is for KMS key %q, but kms_key_id pins %q", purpose, sk.KMSKeyID, pinned)
	}
	if sk.Purpose != purpose {
		return nil, nil, fmt.Errorf("the sealed file holds a %s key, not a %s key", sk.Purpose, purpose)
	}
	// A fresh key and document per request: KMS refuses stale documents.
	r, err := kms.NewRecipient(ctx, e.p.NSM, nil, nil)
	if err != nil {
		return nil, nil, err
	}
	plain, err := kc.Decrypt(ctx, sk.Ciphertext, keyID, sk.EncryptionContext(), r)
	if err != nil {
		return nil, nil, err
	}
	return sk, plain, nil
}

// aeadSeal encrypts with AES-256-GCM under key, binding ad; the nonce leads.
func aeadSeal(key, plain []byte, ad string) ([]byte, error) {
	g, err := gcm(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return g.Seal(nonce, nonce, plain, []byte(ad)), nil
}

func aeadOpen(key, sealed []byte, ad string) ([]byte, error) {
	g, err := gcm(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < g.NonceSize() {
		return nil, errors.New("the sealed anchor is truncated")
	}
	plain, err := g.Open(nil, sealed[:g.NonceSize()], sealed[g.NonceSize():], []byte(ad))
	if err != nil {
		return nil, errors.New("the sealed anchor's credentials fail authentication")
	}
	return plain, nil
}

func gcm(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
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
