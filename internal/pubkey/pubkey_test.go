package pubkey

import (
	"bytes"
	"encoding/base64"
	"testing"

	"github.com/btcsuite/btcd/btcutil/bech32"
)

func TestBech32(t *testing.T) {
	pub := bytes.Repeat([]byte{0xab}, 32)
	s, err := Bech32(pub, "crocnclconspub")
	if err != nil {
		t.Fatal(err)
	}
	hrp, data, err := bech32.Decode(s)
	if err != nil || hrp != "crocnclconspub" {
		t.Fatalf("%s: %v %q", s, err, hrp)
	}
	raw, _ := bech32.ConvertBits(data, 5, 8, false)
	if !bytes.Equal(raw, append([]byte{0x16, 0x24, 0xde, 0x64, 0x20}, pub...)) {
		t.Fatalf("payload %x", raw)
	}
	// Cosmos SDK's legacy bech32 consensus keys start with these characters
	// after the separator for an amino ed25519 key.
	if s[:len("crocnclconspub1zcjduepq")] != "crocnclconspub1zcjduepq" {
		t.Fatalf("unexpected prefix: %s", s)
	}
}

func TestFormats(t *testing.T) {
	pub := bytes.Repeat([]byte{1}, 32)
	got, _ := Format(pub, "base64", "")
	want := "public key: " + base64.StdEncoding.EncodeToString(pub) + "\naddress: " + Address(pub)
	if got != want {
		t.Fatalf("base64: %q", got)
	}
	if got, _ := Format(pub, "json", ""); got != `public key: {"type":"tendermint/PubKeyEd25519","value":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}` {
		t.Fatalf("json: %q", got)
	}
	if _, err := Format(pub, "hex", ""); err == nil {
		t.Fatal("unknown format accepted")
	}
}
