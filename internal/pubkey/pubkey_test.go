package pubkey

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"testing"

	"github.com/btcsuite/btcd/btcutil/bech32"
	cmtsecp "github.com/cometbft/cometbft/crypto/secp256k1"
	cmtjson "github.com/cometbft/cometbft/libs/json"

	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
)

func ed25519Key(b byte) signer.PubKey {
	return signer.PubKey{Type: signer.KeyTypeEd25519, Bytes: bytes.Repeat([]byte{b}, 32)}
}

func TestBech32(t *testing.T) {
	pub := ed25519Key(0xab)
	s, err := Bech32(pub, "crocnclconspub")
	if err != nil {
		t.Fatal(err)
	}
	hrp, data, err := bech32.Decode(s)
	if err != nil || hrp != "crocnclconspub" {
		t.Fatalf("%s: %v %q", s, err, hrp)
	}
	raw, _ := bech32.ConvertBits(data, 5, 8, false)
	if !bytes.Equal(raw, append([]byte{0x16, 0x24, 0xde, 0x64, 0x20}, pub.Bytes...)) {
		t.Fatalf("payload %x", raw)
	}
	// Cosmos SDK's legacy bech32 consensus keys start with these characters
	// after the separator for an amino ed25519 key.
	if s[:len("crocnclconspub1zcjduepq")] != "crocnclconspub1zcjduepq" {
		t.Fatalf("unexpected prefix: %s", s)
	}
}

// A secp256k1 key's bech32 carries its amino prefix (EB5AE987, length
// 0x21): legacy Cosmos SDK secp256k1 keys read "…pub1addwnpep…".
func TestBech32Secp256k1(t *testing.T) {
	g, _ := hex.DecodeString("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
	pub := signer.PubKey{Type: signer.KeyTypeSecp256k1, Bytes: g}
	s, err := Bech32(pub, "bandvalconspub")
	if err != nil {
		t.Fatal(err)
	}
	if s[:len("bandvalconspub1addwnpep")] != "bandvalconspub1addwnpep" {
		t.Fatalf("unexpected prefix: %s", s)
	}
	_, data, _ := bech32.Decode(s)
	raw, _ := bech32.ConvertBits(data, 5, 8, false)
	if !bytes.Equal(raw, append([]byte{0xeb, 0x5a, 0xe9, 0x87, 0x21}, g...)) {
		t.Fatalf("payload %x", raw)
	}
	if _, err := Bech32(signer.PubKey{Type: signer.KeyTypeSecp256k1, Bytes: g[1:]}, "x"); err == nil {
		t.Fatal("a 32-byte secp256k1 key was encoded")
	}
}

func TestFormats(t *testing.T) {
	pub := ed25519Key(1)
	got, _ := Format(pub, "base64", "")
	want := "public key: " + base64.StdEncoding.EncodeToString(pub.Bytes) + "\naddress: " + Address(pub)
	if got != want {
		t.Fatalf("base64: %q", got)
	}
	if got, _ := Format(pub, "json", ""); got != `public key: {"type":"tendermint/PubKeyEd25519","value":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}` {
		t.Fatalf("json: %q", got)
	}
	if _, err := Format(pub, "hex", ""); err == nil || CheckFormat("hex", "") == nil {
		t.Fatal("unknown format accepted")
	}
}

// secp256k1 keys print as CometBFT prints them: its JSON, its address.
func TestFormatsSecp256k1(t *testing.T) {
	key, err := signer.GenerateKey(signer.KeyTypeSecp256k1)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.PubKey()
	ref := cmtsecp.PubKey(pub.Bytes)
	refJSON, _ := cmtjson.Marshal(ref)
	if got, _ := Format(pub, "json", ""); got != "public key: "+string(refJSON) {
		t.Fatalf("json: %q, CometBFT's %s", got, refJSON)
	}
	got, _ := Format(pub, "base64", "")
	if want := "public key: " + base64.StdEncoding.EncodeToString(pub.Bytes) + "\naddress: " + ref.Address().String(); got != want {
		t.Fatalf("base64: %q, want %q", got, want)
	}
}
