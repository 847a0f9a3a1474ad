// Package pubkey prints a consensus public key the ways operators need it:
// bech32 with the chain's prefix (amino-prefixed, e.g. crocnclconspub1…),
// base64 with the validator address, or CometBFT's JSON.
package pubkey

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/btcsuite/btcd/btcutil/bech32"
)

// aminoEd25519 is the amino prefix of an ed25519 public key (PubKeyEd25519
// registered type bytes 1624DE64, then the length 0x20), which bech32
// consensus keys such as crocnclconspub1… carry.
var aminoEd25519 = []byte{0x16, 0x24, 0xde, 0x64, 0x20}

// Bech32 returns the bech32 form of an ed25519 key with prefix hrp.
func Bech32(pub []byte, hrp string) (string, error) {
	if len(pub) != 32 {
		return "", fmt.Errorf("pubkey: ed25519 key must be 32 bytes, got %d", len(pub))
	}
	data, err := bech32.ConvertBits(append(append([]byte(nil), aminoEd25519...), pub...), 8, 5, true)
	if err != nil {
		return "", err
	}
	return bech32.Encode(strings.ToLower(hrp), data)
}

// Address is the validator address: the first 20 bytes of SHA-256(pub), in
// upper-case hex as CometBFT prints it.
func Address(pub []byte) string {
	sum := sha256.Sum256(pub)
	return fmt.Sprintf("%X", sum[:20])
}

// JSON is CometBFT's JSON for the key, as priv_validator_key.json and
// genesis files hold it.
func JSON(pub []byte) string {
	return fmt.Sprintf(`{"type":"tendermint/PubKeyEd25519","value":"%s"}`, base64.StdEncoding.EncodeToString(pub))
}

// Format renders pub as "bech32" (with prefix), "base64" or "json", as the
// lines init prints.
func Format(pub []byte, format, prefix string) (string, error) {
	switch format {
	case "bech32":
		s, err := Bech32(pub, prefix)
		if err != nil {
			return "", err
		}
		return "public key: " + s, nil
	case "base64":
		return fmt.Sprintf("public key: %s\naddress: %s", base64.StdEncoding.EncodeToString(pub), Address(pub)), nil
	case "json":
		return "public key: " + JSON(pub), nil
	}
	return "", fmt.Errorf("pubkey: unknown format %q (want bech32, base64 or json)", format)
}
