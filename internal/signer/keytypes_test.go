package signer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/cometbft/cometbft/crypto"
	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	cmtenc "github.com/cometbft/cometbft/crypto/encoding"
	cmtsecp "github.com/cometbft/cometbft/crypto/secp256k1"
	cmtjson "github.com/cometbft/cometbft/libs/json"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// cometKey returns CometBFT's own key for a type and seed: what the chain
// verifies against.
func cometKey(keyType string, seed []byte) crypto.PrivKey {
	switch keyType {
	case KeyTypeEd25519:
		k, _ := NewEd25519(seed)
		return cmted25519.PrivKey(bytes.Clone(k.priv))
	case KeyTypeSecp256k1:
		return cmtsecp.PrivKey(bytes.Clone(seed))
	}
	panic(keyType)
}

// Every key type signs, addresses and encodes exactly as CometBFT does:
// signatures verify with CometBFT's key and are byte-identical to the ones
// it makes (RFC 6979 for secp256k1: HA relies on the same message getting
// the same signature), addresses and protobuf and JSON encodings equal.
func TestKeyTypesMatchCometBFT(t *testing.T) {
	for _, kt := range KeyTypes() {
		t.Run(kt, func(t *testing.T) {
			for i := range 8 {
				seed := sha256.Sum256([]byte(fmt.Sprintf("seed %s %d", kt, i)))
				key, err := NewKey(kt, seed[:])
				if err != nil {
					t.Fatal(err)
				}
				ref := cometKey(kt, seed[:])
				pub := key.PubKey()
				if pub.Type != kt || pub.Type != ref.Type() || !bytes.Equal(pub.Bytes, ref.PubKey().Bytes()) {
					t.Fatalf("public key %s %x, CometBFT's %s %x", pub.Type, pub.Bytes, ref.Type(), ref.PubKey().Bytes())
				}
				if !bytes.Equal(pub.Address(), ref.PubKey().Address()) {
					t.Fatalf("address %X, CometBFT's %s", pub.Address(), ref.PubKey().Address())
				}
				p, err := pub.Proto()
				if err != nil {
					t.Fatal(err)
				}
				refProto, err := cmtenc.PubKeyToProto(ref.PubKey())
				if err != nil {
					t.Fatal(err)
				}
				if !p.Equal(refProto) {
					t.Fatalf("proto %v, CometBFT's %v", p, refProto)
				}
				refJSON, err := cmtjson.Marshal(ref.PubKey())
				if err != nil {
					t.Fatal(err)
				}
				if pub.JSON() != string(refJSON) {
					t.Fatalf("JSON %s, CometBFT's %s", pub.JSON(), refJSON)
				}
				if !bytes.Equal(key.Seed(), seed[:]) {
					t.Fatal("the seed does not round-trip")
				}
				for j := range 4 {
					msg := []byte(fmt.Sprintf("sign bytes %d/%d", i, j))
					sig, err := key.Sign(msg)
					if err != nil {
						t.Fatal(err)
					}
					refSig, err := ref.Sign(msg)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(sig, refSig) {
						t.Fatalf("signature %x, CometBFT's %x", sig, refSig)
					}
					again, _ := key.Sign(msg)
					if !bytes.Equal(sig, again) {
						t.Fatal("the same message got two signatures")
					}
					if !ref.PubKey().VerifySignature(msg, sig) {
						t.Fatal("CometBFT does not verify the signature")
					}
					if ref.PubKey().VerifySignature(append(msg, 0), sig) {
						t.Fatal("CometBFT verifies the signature for another message")
					}
				}
			}
		})
	}
}

// RFC 6979's deterministic nonce, checked against a fixed vector computed
// by CometBFT v1.0.1 (crypto/secp256k1) for the secret 1: a change of
// library or encoding that still verifies but signs differently would
// split an HA cluster's signatures.
func TestSecp256k1Vector(t *testing.T) {
	seed := make([]byte, 32)
	seed[31] = 1
	key, err := NewSecp256k1(seed)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(key.PubKey().Bytes); got != "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798" {
		t.Fatalf("public key of 1 is %s, want the generator", got)
	}
	ref, _ := cmtsecp.PrivKey(seed).Sign([]byte("tmkms-nitro"))
	sig, _ := key.Sign([]byte("tmkms-nitro"))
	if !bytes.Equal(sig, ref) || len(sig) != 64 {
		t.Fatalf("signature %x, CometBFT's %x", sig, ref)
	}
	// Low s: CometBFT refuses the other half of the order.
	var s secp256k1.ModNScalar
	s.SetByteSlice(sig[32:])
	if s.IsOverHalfOrder() {
		t.Fatal("high-s signature")
	}
}

func TestSecp256k1RefusesOutOfRangeSecrets(t *testing.T) {
	order, _ := hex.DecodeString("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")
	for name, b := range map[string][]byte{"zero": make([]byte, 32), "order": order, "all ones": bytes.Repeat([]byte{0xff}, 32), "short": make([]byte, 31)} {
		if _, err := NewSecp256k1(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := NewKey(KeyTypeSecp256k1, b); err == nil {
			t.Errorf("%s: NewKey accepted", name)
		}
	}
}

// The same 32 bytes make different keys under each type, so a file whose
// type was changed fails the public-key check of unsealing.
func TestTypesDiffer(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, 32)
	a, _ := NewKey(KeyTypeEd25519, seed)
	b, _ := NewKey(KeyTypeSecp256k1, seed)
	if bytes.Equal(a.PubKey().Bytes, b.PubKey().Bytes) || a.PubKey().Type == b.PubKey().Type {
		t.Fatal("the types make the same public key")
	}
	if _, err := NewKey("bls12_381", seed); err == nil || !strings.Contains(err.Error(), "ed25519 or secp256k1") {
		t.Fatalf("unknown type: %v", err)
	}
}

func TestNewPubKey(t *testing.T) {
	k, _ := GenerateKey(KeyTypeSecp256k1)
	good := k.PubKey().Bytes
	if _, err := NewPubKey(KeyTypeSecp256k1, good); err != nil {
		t.Fatal(err)
	}
	uncompressed := append([]byte{4}, bytes.Repeat([]byte{1}, 32)...)
	offCurve := append([]byte{2}, bytes.Repeat([]byte{0xff}, 32)...)
	for name, tc := range map[string]struct {
		typ string
		b   []byte
	}{
		"secp256k1 of 32 bytes": {KeyTypeSecp256k1, good[1:]},
		"not compressed":        {KeyTypeSecp256k1, uncompressed},
		"off the curve":         {KeyTypeSecp256k1, offCurve},
		"ed25519 of 33 bytes":   {KeyTypeEd25519, good},
		"unknown type":          {"sr25519", good[1:]},
	} {
		if _, err := NewPubKey(tc.typ, tc.b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The amino prefixes are what amino derives from CometBFT's type names:
// sha256 of the name, leading zero bytes skipped, 3 bytes of
// disambiguation, zero bytes skipped, 4 bytes of prefix; then the length.
func TestAminoPrefixes(t *testing.T) {
	for _, name := range KeyTypes() {
		kt := keyTypes[name]
		bz := sha256.Sum256([]byte(kt.jsonPubKey))
		b := bytes.TrimLeft(bz[:], "\x00")[3:]
		b = bytes.TrimLeft(b, "\x00")
		want := append(bytes.Clone(b[:4]), byte(kt.pubKeySize))
		if !bytes.Equal(kt.aminoPrefix, want) {
			t.Errorf("%s: amino prefix %x, want %x", name, kt.aminoPrefix, want)
		}
	}
}

// A priv_validator_key.json of either type yields its seed; CometBFT's own
// files are the input.
func TestSeedFromPrivKeyJSON(t *testing.T) {
	for _, kt := range KeyTypes() {
		seed := sha256.Sum256([]byte(kt))
		ref := cometKey(kt, seed[:])
		b, _ := cmtjson.Marshal(ref)
		var f struct {
			Type  string `json:"type"`
			Value []byte `json:"value"`
		}
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		got, s, err := SeedFromPrivKeyJSON(f.Type, f.Value)
		if err != nil || got != kt || !bytes.Equal(s, seed[:]) {
			t.Fatalf("%s: %q %x %v", kt, got, s, err)
		}
	}
	bad := bytes.Repeat([]byte{1}, 64) // public half does not match
	if _, _, err := SeedFromPrivKeyJSON("tendermint/PrivKeyEd25519", bad); err == nil {
		t.Fatal("an ed25519 key whose halves disagree was accepted")
	}
	if _, _, err := SeedFromPrivKeyJSON("tendermint/PrivKeySecp256k1", make([]byte, 32)); err == nil {
		t.Fatal("a zero secp256k1 key was accepted")
	}
	if _, _, err := SeedFromPrivKeyJSON("tendermint/PrivKeySr25519", make([]byte, 32)); err == nil {
		t.Fatal("an unknown type was accepted")
	}
}
