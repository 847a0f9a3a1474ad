package signer

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	cryptov1 "github.com/cometbft/cometbft/api/cometbft/crypto/v1"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"golang.org/x/crypto/ripemd160" //nolint:staticcheck // deprecated, but CometBFT's secp256k1 addresses are RIPEMD-160
)

// Key type names, as CometBFT spells them in the privval protocol, in
// consensus params (validator.pub_key_types) and in sealed key files.
const (
	KeyTypeEd25519   = "ed25519"
	KeyTypeSecp256k1 = "secp256k1"
)

// SeedSize is the size of what a key is made from and sealed as: an
// ed25519 seed, or a secp256k1 secret scalar.
const SeedSize = 32

// Sealable is a consensus key made from a 32-byte seed: the seed is what
// gets sealed, and NewKey makes the key again from it.
type Sealable interface {
	Key
	// Seed returns the key's 32-byte seed. Handle with care.
	Seed() []byte
}

// keyType is everything that depends on a key type. The rest of the
// project asks this table (through the functions below), so a new type is
// one entry here and its tests.
type keyType struct {
	pubKeySize int
	// CometBFT's JSON (amino) names of the public and private key, as
	// genesis files and priv_validator_key.json hold them.
	jsonPubKey, jsonPrivKey string
	// aminoPrefix is the amino registered-type prefix and length byte that
	// bech32 consensus keys (cosmosvalconspub1…) carry before the key.
	aminoPrefix []byte
	address     func(pub []byte) []byte
	proto       func(pub []byte) cryptov1.PublicKey
	checkPub    func(pub []byte) error
	fromSeed    func(seed []byte) (Sealable, error)
	// fromJSON returns the seed of the private key in a
	// priv_validator_key.json.
	fromJSON func(raw []byte) ([]byte, error)
}

var keyTypes = map[string]keyType{
	KeyTypeEd25519: {
		pubKeySize: ed25519.PublicKeySize,
		jsonPubKey: "tendermint/PubKeyEd25519", jsonPrivKey: "tendermint/PrivKeyEd25519",
		aminoPrefix: []byte{0x16, 0x24, 0xde, 0x64, 0x20},
		address: func(pub []byte) []byte {
			sum := sha256.Sum256(pub)
			return sum[:20]
		},
		proto: func(pub []byte) cryptov1.PublicKey {
			return cryptov1.PublicKey{Sum: &cryptov1.PublicKey_Ed25519{Ed25519: pub}}
		},
		checkPub: func([]byte) error { return nil }, // every 32 bytes decode as CometBFT sees them
		fromSeed: func(seed []byte) (Sealable, error) { return NewEd25519(seed) },
		fromJSON: func(raw []byte) ([]byte, error) {
			// CometBFT writes seed and public key; the key checks they agree.
			if len(raw) != ed25519.PrivateKeySize {
				return nil, fmt.Errorf("want %d bytes, got %d", ed25519.PrivateKeySize, len(raw))
			}
			k, err := NewEd25519(raw)
			if err != nil {
				return nil, err
			}
			return k.Seed(), nil
		},
	},
	KeyTypeSecp256k1: {
		pubKeySize: secp256k1.PubKeyBytesLenCompressed,
		jsonPubKey: "tendermint/PubKeySecp256k1", jsonPrivKey: "tendermint/PrivKeySecp256k1",
		aminoPrefix: []byte{0xeb, 0x5a, 0xe9, 0x87, 0x21},
		address: func(pub []byte) []byte {
			sum := sha256.Sum256(pub)
			h := ripemd160.New()
			h.Write(sum[:])
			return h.Sum(nil)
		},
		proto: func(pub []byte) cryptov1.PublicKey {
			return cryptov1.PublicKey{Sum: &cryptov1.PublicKey_Secp256K1{Secp256K1: pub}}
		},
		checkPub: func(pub []byte) error {
			// CometBFT refuses a point off the curve, so would the chain.
			if pub[0] != secp256k1.PubKeyFormatCompressedEven && pub[0] != secp256k1.PubKeyFormatCompressedOdd {
				return errors.New("not a compressed point")
			}
			_, err := secp256k1.ParsePubKey(pub)
			return err
		},
		fromSeed: func(seed []byte) (Sealable, error) { return NewSecp256k1(seed) },
		fromJSON: func(raw []byte) ([]byte, error) {
			if _, err := NewSecp256k1(raw); err != nil {
				return nil, err
			}
			return bytes.Clone(raw), nil // the caller clears raw
		},
	},
}

// KeyTypes lists the supported key types, sorted.
func KeyTypes() []string {
	names := make([]string, 0, len(keyTypes))
	for n := range keyTypes {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// CheckKeyType returns an error naming the supported types unless t is one.
func CheckKeyType(t string) error {
	if _, ok := keyTypes[t]; !ok {
		return fmt.Errorf("signer: unknown key type %q (want %s)", t, strings.Join(KeyTypes(), " or "))
	}
	return nil
}

// NewPubKey returns the public key of type t encoded as b, after checking
// that b is one: the right size and, for secp256k1, a point on the curve.
func NewPubKey(t string, b []byte) (PubKey, error) {
	kt, ok := keyTypes[t]
	switch {
	case !ok:
		return PubKey{}, CheckKeyType(t)
	case len(b) != kt.pubKeySize:
		return PubKey{}, fmt.Errorf("signer: a %s public key is %d bytes, got %d", t, kt.pubKeySize, len(b))
	}
	if err := kt.checkPub(b); err != nil {
		return PubKey{}, fmt.Errorf("signer: invalid %s public key: %w", t, err)
	}
	return PubKey{Type: t, Bytes: b}, nil
}

// NewKey makes the key of type t from its 32-byte seed.
func NewKey(t string, seed []byte) (Sealable, error) {
	kt, ok := keyTypes[t]
	switch {
	case !ok:
		return nil, CheckKeyType(t)
	case len(seed) != SeedSize:
		return nil, fmt.Errorf("signer: a %s seed is %d bytes, got %d", t, SeedSize, len(seed))
	}
	return kt.fromSeed(seed)
}

// GenerateKey makes a new key of type t from the system's random source.
func GenerateKey(t string) (Sealable, error) {
	switch t {
	case KeyTypeEd25519:
		return GenerateEd25519()
	case KeyTypeSecp256k1:
		return GenerateSecp256k1()
	}
	return nil, CheckKeyType(t)
}

// JSON is CometBFT's JSON for the key, as genesis files and
// priv_validator_key.json hold it: {"type":"tendermint/PubKey…","value":base64}.
func (p PubKey) JSON() string {
	return fmt.Sprintf(`{"type":%q,"value":"%s"}`, keyTypes[p.Type].jsonPubKey, base64.StdEncoding.EncodeToString(p.Bytes))
}

// Amino is the key with its amino prefix, the payload of bech32 consensus
// keys; nil for a type this package does not know.
func (p PubKey) Amino() []byte {
	kt, ok := keyTypes[p.Type]
	if !ok {
		return nil
	}
	return append(slices.Clip(kt.aminoPrefix), p.Bytes...)
}

// SeedFromPrivKeyJSON returns the key type and seed of the priv_key of a
// CometBFT priv_validator_key.json: its JSON type name and decoded value.
func SeedFromPrivKeyJSON(jsonType string, raw []byte) (string, []byte, error) {
	for name, kt := range keyTypes {
		if kt.jsonPrivKey != jsonType {
			continue
		}
		seed, err := kt.fromJSON(raw)
		if err != nil {
			return "", nil, fmt.Errorf("signer: invalid %s: %w", jsonType, err)
		}
		return name, seed, nil
	}
	var want []string
	for _, name := range KeyTypes() {
		want = append(want, keyTypes[name].jsonPrivKey)
	}
	return "", nil, fmt.Errorf("signer: private key type %q is not %s", jsonType, strings.Join(want, " or "))
}
