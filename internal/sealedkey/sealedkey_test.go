package sealedkey

import (
	"bytes"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
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

func sampleV2() *Key {
	k := sample()
	k.Version, k.Origin, k.ChainIDs, k.Anchor = 2, Generated, []string{"cosmoshub-4", "neutron-1"}, strings.Repeat("ab", 32)
	return k
}

// TestContextV2 checks what KMS binds: a host that edits any bound field
// of the file presents another context, and KMS refuses to decrypt.
func TestContextV2(t *testing.T) {
	b, err := Marshal(sampleV2())
	if err != nil {
		t.Fatal(err)
	}
	k, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ContextPurpose: Consensus, ContextOrigin: Generated,
		ContextChainIDs: `["cosmoshub-4","neutron-1"]`, ContextAnchor: strings.Repeat("ab", 32)}
	if got := k.EncryptionContext(); !maps.Equal(got, want) {
		t.Fatalf("context = %v, want %v", got, want)
	}
	k.Origin = Imported
	if got := k.EncryptionContext()[ContextPublicKey]; got != strings.Repeat("07", 32) {
		t.Fatalf("an imported key's context binds its public key: %q", got)
	}
	if !k.AllowsChain("neutron-1") || k.AllowsChain("osmosis-1") || !sample().AllowsChain("osmosis-1") {
		t.Fatal("AllowsChain")
	}
	for name, edit := range map[string]func(*Key){
		"anchor removed": func(k *Key) { k.Anchor = "" },
		"chain added":    func(k *Key) { k.ChainIDs = append(k.ChainIDs, "osmosis-1") },
		"origin changed": func(k *Key) { k.Origin = Imported },
	} {
		e := sampleV2()
		edit(e)
		if maps.Equal(e.EncryptionContext(), sampleV2().EncryptionContext()) {
			t.Errorf("%s: the context did not change", name)
		}
	}
}

func TestMalformedV2(t *testing.T) {
	anchorFile := func() *Key {
		return &Key{Version: 2, Purpose: Anchor, Origin: Generated, Anchor: strings.Repeat("cd", 32), KMSKeyID: "k",
			Ciphertext: []byte{1}, Sealed: make([]byte, 40)}
	}
	if _, err := Marshal(anchorFile()); err != nil {
		t.Fatalf("anchor file: %v", err)
	}
	for name, edit := range map[string]func(*Key){
		"no origin":             func(k *Key) { k.Origin = "" },
		"anchor without chains": func(k *Key) { k.ChainIDs = nil },
		"short anchor":          func(k *Key) { k.Anchor = "abcd" },
		"repeated chain":        func(k *Key) { k.ChainIDs = []string{"a", "a"} },
		"sealed data on a key":  func(k *Key) { k.Sealed = []byte{1} },
		"v1 with an anchor":     func(k *Key) { k.Version = 1 },
	} {
		k := sampleV2()
		edit(k)
		if _, err := Marshal(k); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	for name, edit := range map[string]func(*Key){
		"anchor with a public key": func(k *Key) { k.PublicKey = make([]byte, 32) },
		"anchor imported":          func(k *Key) { k.Origin = Imported },
		"anchor without data":      func(k *Key) { k.Sealed = nil },
	} {
		k := anchorFile()
		edit(k)
		if _, err := Marshal(k); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func sampleSecp256k1(t *testing.T) *Key {
	t.Helper()
	key, err := signer.NewKey(signer.KeyTypeSecp256k1, bytes.Repeat([]byte{5}, 32))
	if err != nil {
		t.Fatal(err)
	}
	k := sampleV2()
	k.KeyType, k.PublicKey = signer.KeyTypeSecp256k1, key.PubKey().Bytes
	return k
}

// A secp256k1 key's type is bound by KMS: editing it in the file changes
// the context, whichever the origin.
func TestKeyTypeBound(t *testing.T) {
	b, err := Marshal(sampleSecp256k1(t))
	if err != nil {
		t.Fatal(err)
	}
	k, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if k.KeyType != signer.KeyTypeSecp256k1 || k.PubKey().Type != signer.KeyTypeSecp256k1 || len(k.PublicKey) != 33 {
		t.Fatalf("round trip: %+v", k)
	}
	for _, origin := range []string{Generated, Imported} {
		k.Origin = origin
		c := k.EncryptionContext()
		if c[ContextKeyType] != signer.KeyTypeSecp256k1 {
			t.Fatalf("%s: context %v does not bind the key type", origin, c)
		}
		ed := *k
		ed.KeyType = signer.KeyTypeEd25519
		if maps.Equal(ed.EncryptionContext(), c) {
			t.Fatalf("%s: the type changed and the context did not", origin)
		}
	}
	// ed25519 contexts are those of files sealed before key types were
	// bound, which must keep decrypting.
	if _, ok := sampleV2().EncryptionContext()[ContextKeyType]; ok {
		t.Fatal("an ed25519 context names its type")
	}
}

// Files written before secp256k1 (key_type always "ed25519") and files
// without key_type both load as ed25519.
func TestKeyTypeDefault(t *testing.T) {
	b, _ := Marshal(sampleV2())
	without := strings.Replace(string(b), `"key_type": "ed25519",`, "", 1)
	if without == string(b) {
		t.Fatal("key_type not found in the file")
	}
	for _, in := range []string{string(b), without} {
		k, err := Parse([]byte(in))
		if err != nil || k.KeyType != signer.KeyTypeEd25519 {
			t.Fatalf("%v %+v", err, k)
		}
	}
}

func TestMalformedKeyType(t *testing.T) {
	for name, edit := range map[string]func(*Key){
		"unknown type":             func(k *Key) { k.KeyType = "sr25519" },
		"secp256k1 of 32 bytes":    func(k *Key) { k.PublicKey = k.PublicKey[1:] },
		"ed25519 with a secp key":  func(k *Key) { k.KeyType = signer.KeyTypeEd25519 },
		"secp256k1 identity key":   func(k *Key) { k.Purpose = Identity },
		"secp256k1 in version one": func(k *Key) { k.Version, k.Origin, k.ChainIDs, k.Anchor = 1, "", nil, "" },
		"no type":                  func(k *Key) { k.KeyType = "" },
	} {
		k := sampleSecp256k1(t)
		edit(k)
		if _, err := Marshal(k); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}
