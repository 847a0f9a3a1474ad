package sealedkey

import (
	"bytes"
	"errors"
	"testing"
)

func sample() *Key {
	return &Key{Version: 1, Purpose: Consensus, KeyType: "ed25519", PublicKey: bytes.Repeat([]byte{7}, 32),
		KMSKeyID: "arn:aws:kms:ap-southeast-1:111122223333:key/1234", Region: "ap-southeast-1", Ciphertext: []byte{1, 2, 3}}
}

func TestRoundTrip(t *testing.T) {
	b, err := Marshal(sample())
	if err != nil {
		t.Fatal(err)
	}
	k, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if k.Legacy() || !bytes.Equal(k.PublicKey, sample().PublicKey) || k.EncryptionContext()[ContextPublicKey] != "0707070707070707070707070707070707070707070707070707070707070707" {
		t.Fatalf("round trip: %+v", k)
	}
}

func TestLegacy(t *testing.T) {
	blob := []byte{0x01, 0x02, 0x03, 0x00, 0x78, 0xff, 0xfe}
	k, err := Parse(blob)
	if err != nil || !k.Legacy() || !bytes.Equal(k.Ciphertext, blob) || k.EncryptionContext() != nil {
		t.Fatalf("legacy: %+v %v", k, err)
	}
}

func TestMalformed(t *testing.T) {
	for name, in := range map[string]string{
		"empty":       "",
		"text":        "hello there",
		"unknown key": `{"version":1,"purpose":"consensus","key_type":"ed25519","public_key":"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=","kms_key_id":"k","region":"r","ciphertext":"AQID","extra":1}`,
		"version":     `{"version":2}`,
		"short pub":   `{"version":1,"purpose":"consensus","key_type":"ed25519","public_key":"AQ==","kms_key_id":"k","ciphertext":"AQID"}`,
		"no key id":   `{"version":1,"purpose":"consensus","key_type":"ed25519","public_key":"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=","ciphertext":"AQID"}`,
		"trailing":    `{"version":1,"purpose":"consensus","key_type":"ed25519","public_key":"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=","kms_key_id":"k","ciphertext":"AQID"} {}`,
	} {
		if _, err := Parse([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	b, _ := Marshal(sample())
	f.Add(b)
	f.Add([]byte{0x01, 0x02, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > MaxFileSize+1 { // Parse refuses these first
			return
		}
		k, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || k != nil {
				t.Fatalf("bad error contract: %v %v", k, err)
			}
			return
		}
		if !k.Legacy() {
			if _, err := Marshal(k); err != nil {
				t.Fatal(err)
			}
		}
	})
}
