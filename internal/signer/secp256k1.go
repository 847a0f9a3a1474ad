package signer

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// Secp256k1 is a secp256k1 consensus key held in memory. It signs as
// CometBFT's crypto/secp256k1 does: ECDSA over SHA-256 of the message, the
// nonce from RFC 6979 (so the same message always gets the same signature,
// which HA relies on: any instance can reproduce a decision's signature),
// encoded as the 64 bytes r || s with s in the lower half of the order
// (CometBFT rejects the malleable high-s form).
type Secp256k1 struct {
	_    [0]func() // not comparable: compare keys with Equal, in constant time
	priv *secp256k1.PrivateKey
	pub  PubKey
}

// NewSecp256k1 returns the key for a 32-byte big-endian secret scalar,
// CometBFT's encoding. A scalar of 0 or at least the group order is
// refused: decred's PrivKeyFromBytes would silently reduce it, making a
// different key than the one the bytes name.
func NewSecp256k1(b []byte) (*Secp256k1, error) {
	if len(b) != SeedSize {
		return nil, fmt.Errorf("signer: secp256k1 key must be %d bytes, got %d", SeedSize, len(b))
	}
	var s secp256k1.ModNScalar
	if overflow := s.SetByteSlice(b); overflow || s.IsZero() {
		s.Zero()
		return nil, errors.New("signer: secp256k1 key is not in [1, n-1]")
	}
	priv := secp256k1.NewPrivateKey(&s)
	s.Zero()
	return &Secp256k1{priv: priv, pub: PubKey{Type: KeyTypeSecp256k1, Bytes: priv.PubKey().SerializeCompressed()}}, nil
}

// GenerateSecp256k1 makes a new key from the system's random source.
func GenerateSecp256k1() (*Secp256k1, error) {
	priv, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		return nil, fmt.Errorf("signer: failed to generate key: %w", err)
	}
	defer priv.Zero()
	return NewSecp256k1(priv.Serialize())
}

func (k *Secp256k1) PubKey() PubKey { return k.pub }

func (k *Secp256k1) Sign(msg []byte) ([]byte, error) {
	sum := sha256.Sum256(msg)
	// The compact form is a recovery byte then r || s, s already low.
	return ecdsa.SignCompact(k.priv, sum[:], false)[1:], nil
}

// Seed returns the 32-byte secret scalar, for sealing. Handle with care.
func (k *Secp256k1) Seed() []byte { return k.priv.Serialize() }

// Equal reports whether two keys are the same, in constant time.
func (k *Secp256k1) Equal(o *Secp256k1) bool {
	return subtle.ConstantTimeCompare(k.priv.Serialize(), o.priv.Serialize()) == 1
}

func (k *Secp256k1) String() string {
	return "secp256k1:" + strings.ToUpper(hex.EncodeToString(k.pub.Address())) + "(private key redacted)"
}
func (k *Secp256k1) GoString() string           { return k.String() }
func (k *Secp256k1) LogValue() slog.Value       { return slog.StringValue(k.String()) }
func (k *Secp256k1) Format(f fmt.State, _ rune) { fmt.Fprint(f, k.String()) }
