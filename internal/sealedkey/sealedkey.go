// Package sealedkey is the on-disk form of a key sealed by AWS KMS
// (secrets/secret.key, secrets/id.key): the KMS ciphertext of the 32-byte
// ed25519 seed plus what the enclave needs to check what it unseals.
//
// The public key is bound into the KMS encryption context, so KMS refuses
// to decrypt a ciphertext presented with another file's public key, and the
// enclave refuses a seed whose public key is not the recorded one: a host
// cannot swap one sealed key for another unnoticed. The file holds no secret
// in plaintext.
//
// A tmkms-light secret.key (the raw KMS ciphertext, no encryption context)
// is read too, so validators migrating keep their key.
package sealedkey

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Purposes.
const (
	Consensus = "consensus" // the validator's consensus key
	Identity  = "identity"  // the SecretConnection identity for tcp:// validators
)

// Encryption context keys.
const (
	ContextPurpose   = "tmkms-nitro:purpose"
	ContextPublicKey = "tmkms-nitro:public-key"
)

// MaxFileSize bounds a sealed key file; KMS ciphertexts of a 32-byte seed
// are about 200 bytes.
const MaxFileSize = 16 << 10

// ErrMalformed marks a file that is not a sealed key.
var ErrMalformed = errors.New("malformed sealed key file")

// Key is a sealed key. For a tmkms-light file only Ciphertext is set.
type Key struct {
	Version    int    `json:"version"`
	Purpose    string `json:"purpose"`
	KeyType    string `json:"key_type"`
	PublicKey  []byte `json:"public_key"`
	KMSKeyID   string `json:"kms_key_id"`
	Region     string `json:"region"`
	Ciphertext []byte `json:"ciphertext"`
}

// Legacy reports whether k came from a tmkms-light file.
func (k *Key) Legacy() bool { return k.Version == 0 }

// EncryptionContext is the KMS encryption context the ciphertext is bound
// to; nil for legacy keys.
func (k *Key) EncryptionContext() map[string]string {
	if k.Legacy() {
		return nil
	}
	return Context(k.Purpose, k.PublicKey)
}

// Context returns the encryption context for a purpose and public key.
func Context(purpose string, pub []byte) map[string]string {
	return map[string]string{ContextPurpose: purpose, ContextPublicKey: fmt.Sprintf("%x", pub)}
}

// Marshal encodes k as the file's JSON.
func Marshal(k *Key) ([]byte, error) {
	if err := k.validate(); err != nil {
		return nil, err
	}
	out, err := json.MarshalIndent(k, "", "  ")
	return append(out, '\n'), err
}

// Parse decodes a sealed key file of either format.
func Parse(data []byte) (*Key, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%w: %d bytes is larger than %d", ErrMalformed, len(data), MaxFileSize)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	if trimmed[0] != '{' {
		// tmkms-light wrote the KMS CiphertextBlob as is: binary, never JSON.
		if utf8.Valid(data) {
			return nil, fmt.Errorf("%w: neither JSON nor a KMS ciphertext", ErrMalformed)
		}
		return &Key{Ciphertext: bytes.Clone(data), Purpose: Consensus, KeyType: "ed25519"}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var k Key
	if err := dec.Decode(&k); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrMalformed)
	}
	if err := k.validate(); err != nil {
		return nil, err
	}
	return &k, nil
}

func (k *Key) validate() error {
	switch {
	case k.Version != 1:
		return fmt.Errorf("%w: unsupported version %d", ErrMalformed, k.Version)
	case k.Purpose != Consensus && k.Purpose != Identity:
		return fmt.Errorf("%w: unknown purpose %q", ErrMalformed, k.Purpose)
	case k.KeyType != "ed25519":
		return fmt.Errorf("%w: unsupported key type %q", ErrMalformed, k.KeyType)
	case len(k.PublicKey) != 32:
		return fmt.Errorf("%w: public key is %d bytes, want 32", ErrMalformed, len(k.PublicKey))
	case k.KMSKeyID == "":
		return fmt.Errorf("%w: kms_key_id missing", ErrMalformed)
	case len(k.Ciphertext) == 0 || len(k.Ciphertext) > 6144:
		return fmt.Errorf("%w: ciphertext of %d bytes", ErrMalformed, len(k.Ciphertext))
	}
	return nil
}
