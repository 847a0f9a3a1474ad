package signer

import (
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	cryptov1 "github.com/cometbft/cometbft/api/cometbft/crypto/v1"
)

// Key is a consensus key. Implementations must be safe for concurrent use
// and must never expose the private key through String, GoString or
// LogValue.
type Key interface {
	PubKey() PubKey
	Sign(msg []byte) ([]byte, error)
}

// PubKey is a consensus public key as the privval protocol carries it:
// Type is one of KeyTypes (CometBFT's name for it), Bytes its encoding
// (32 bytes for ed25519, the 33-byte compressed point for secp256k1).
type PubKey struct {
	Type  string
	Bytes []byte
}

// Address is the key's validator address in CometBFT (20 bytes); nil for
// a type this package does not know.
func (p PubKey) Address() []byte {
	t, ok := keyTypes[p.Type]
	if !ok {
		return nil
	}
	return t.address(p.Bytes)
}

// Proto encodes the key as the pre-v1.0 privval dialects carry it.
func (p PubKey) Proto() (cryptov1.PublicKey, error) {
	t, ok := keyTypes[p.Type]
	if !ok {
		return cryptov1.PublicKey{}, fmt.Errorf("signer: no protobuf encoding for %q keys", p.Type)
	}
	return t.proto(p.Bytes), nil
}

// Ed25519 is an ed25519 consensus key held in memory.
type Ed25519 struct {
	_    [0]func() // not comparable: compare keys with Equal, in constant time
	priv ed25519.PrivateKey
	pub  PubKey
}

// NewEd25519 returns the key for a 32-byte seed or a 64-byte private key
// (seed followed by the public key, CometBFT's encoding).
func NewEd25519(b []byte) (*Ed25519, error) {
	var priv ed25519.PrivateKey
	switch len(b) {
	case ed25519.SeedSize:
		priv = ed25519.NewKeyFromSeed(b)
	case ed25519.PrivateKeySize:
		priv = ed25519.NewKeyFromSeed(b[:ed25519.SeedSize])
		if subtle.ConstantTimeCompare(priv[32:], b[32:]) != 1 {
			return nil, errors.New("signer: ed25519 private key does not match its public half")
		}
	default:
		return nil, fmt.Errorf("signer: ed25519 key must be %d or %d bytes, got %d", ed25519.SeedSize, ed25519.PrivateKeySize, len(b))
	}
	return &Ed25519{priv: priv, pub: PubKey{Type: KeyTypeEd25519, Bytes: priv.Public().(ed25519.PublicKey)}}, nil
}

// GenerateEd25519 makes a new key from the system's random source.
func GenerateEd25519() (*Ed25519, error) {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, fmt.Errorf("signer: failed to generate key: %w", err)
	}
	return NewEd25519(priv)
}

func (k *Ed25519) PubKey() PubKey { return k.pub }

func (k *Ed25519) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(k.priv, msg), nil }

// Seed returns the 32-byte seed, for sealing. Handle with care.
func (k *Ed25519) Seed() []byte { return k.priv.Seed() }

// Equal reports whether two keys are the same, in constant time.
func (k *Ed25519) Equal(o *Ed25519) bool { return subtle.ConstantTimeCompare(k.priv, o.priv) == 1 }

func (k *Ed25519) String() string {
	return "ed25519:" + strings.ToUpper(hex.EncodeToString(k.pub.Address())) + "(private key redacted)"
}
func (k *Ed25519) GoString() string           { return k.String() }
func (k *Ed25519) LogValue() slog.Value       { return slog.StringValue(k.String()) }
func (k *Ed25519) Format(f fmt.State, _ rune) { fmt.Fprint(f, k.String()) }
