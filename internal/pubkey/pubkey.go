// Package pubkey prints a consensus public key the ways operators need it:
// bech32 with the chain's prefix (amino-prefixed, e.g. crocnclconspub1…),
// base64 with the validator address, or CometBFT's JSON. What differs
// between key types (amino prefix, JSON type name, address) comes from
// package signer.
package pubkey

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/btcsuite/btcd/btcutil/bech32"

	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
)

// Bech32 returns the bech32 form of a key with prefix hrp: the key with
// its amino prefix, as Cosmos SDK's legacy bech32 consensus keys carry it.
func Bech32(pub signer.PubKey, hrp string) (string, error) {
	if _, err := signer.NewPubKey(pub.Type, pub.Bytes); err != nil {
		return "", fmt.Errorf("pubkey: %w", err)
	}
	data, err := bech32.ConvertBits(pub.Amino(), 8, 5, true)
	if err != nil {
		return "", err
	}
	return bech32.Encode(strings.ToLower(hrp), data)
}

// Address is the validator address in upper-case hex, as CometBFT prints
// it.
func Address(pub signer.PubKey) string {
	return fmt.Sprintf("%X", pub.Address())
}

// JSON is CometBFT's JSON for the key, as priv_validator_key.json and
// genesis files hold it.
func JSON(pub signer.PubKey) string { return pub.JSON() }

// Format renders pub as "bech32" (with prefix), "base64" or "json", as the
// lines init prints.
func Format(pub signer.PubKey, format, prefix string) (string, error) {
	switch format {
	case "bech32":
		s, err := Bech32(pub, prefix)
		if err != nil {
			return "", err
		}
		return "public key: " + s, nil
	case "base64":
		return fmt.Sprintf("public key: %s\naddress: %s", base64.StdEncoding.EncodeToString(pub.Bytes), Address(pub)), nil
	case "json":
		return "public key: " + JSON(pub), nil
	}
	return "", fmt.Errorf("pubkey: unknown format %q (want bech32, base64 or json)", format)
}

// CheckFormat reports whether Format knows format and, for bech32, prefix.
func CheckFormat(format, prefix string) error {
	k, err := signer.NewKey(signer.KeyTypeEd25519, make([]byte, signer.SeedSize))
	if err != nil {
		return err
	}
	_, err = Format(k.PubKey(), format, prefix)
	return err
}
