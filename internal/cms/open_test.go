package cms

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"testing"
)

func TestOpenKMSVector(t *testing.T) {
	v, key := loadKMSVector(t)
	got, err := Open(v.Envelope, key)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !bytes.Equal(got, v.Plaintext) {
		t.Fatalf("Open = %x, want %x", got, v.Plaintext)
	}
}

func TestRecipientKeyIDMatchesKMS(t *testing.T) {
	v, key := loadKMSVector(t)
	env, err := Parse(v.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	id, err := RecipientKeyID(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if id != env.RecipientKeyID {
		t.Fatalf("RecipientKeyID = %x, KMS used %x", id, env.RecipientKeyID)
	}
}

func TestOpenRefuses(t *testing.T) {
	v, key := loadKMSVector(t)
	other := mustOtherKey(t)
	otherID, err := RecipientKeyID(&other.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	env, err := Parse(v.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	// edit returns the vector re-encoded after f changes a copy of its fields.
	edit := func(f func(e *Envelope)) []byte {
		e := Envelope{env.RecipientKeyID, bytes.Clone(env.EncryptedKey), bytes.Clone(env.IV), bytes.Clone(env.Ciphertext)}
		f(&e)
		return e.marshal()
	}
	tests := []struct {
		name     string
		envelope []byte
		key      *rsa.PrivateKey
		want     error
	}{
		{"nil key", v.Envelope, nil, ErrInvalidKey},
		{"key without modulus", v.Envelope, &rsa.PrivateKey{}, ErrInvalidKey},
		{"another key", v.Envelope, other, ErrWrongRecipient},
		{"tampered rid", edit(func(e *Envelope) { e.RecipientKeyID[0] ^= 1 }), key, ErrWrongRecipient},
		// The rid is only a label: relabelled for another key, OAEP must still refuse.
		{"rid relabelled for another key", edit(func(e *Envelope) { e.RecipientKeyID = otherID }), other, ErrDecrypt},
		{"flipped encryptedKey", edit(func(e *Envelope) { e.EncryptedKey[100] ^= 1 }), key, ErrDecrypt},
		{"short encryptedKey", edit(func(e *Envelope) { e.EncryptedKey = e.EncryptedKey[1:] }), key, ErrDecrypt},
		// A 32-byte key in 48 bytes of ciphertext means the last block is all
		// padding; flipping the block before it changes a pad byte.
		{"flipped padding via previous block", edit(func(e *Envelope) { e.Ciphertext[31] ^= 1 }), key, ErrDecrypt},
		{"flipped last block", edit(func(e *Envelope) { e.Ciphertext[40] ^= 0x80 }), key, ErrDecrypt},
		{"truncated ciphertext", edit(func(e *Envelope) { e.Ciphertext = e.Ciphertext[:32] }), key, ErrDecrypt},
		{"malformed envelope", v.Envelope[:100], key, ErrMalformed},
		{"unsupported envelope", append(bytes.Clone(v.Envelope), make([]byte, MaxEnvelopeSize)...), key, ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Open(tt.envelope, tt.key)
			if got != nil {
				t.Errorf("Open returned %d bytes with error %v", len(got), err)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open error = %v, want %v", err, tt.want)
			}
			if tt.want == ErrDecrypt && err != ErrDecrypt {
				t.Errorf("decrypt failure %q carries detail; want the bare ErrDecrypt", err)
			}
		})
	}
}

// sealRaw encrypts already-padded content under a chosen content key, so
// tests can build envelopes that a correct Seal never would.
func sealRaw(t *testing.T, pub *rsa.PublicKey, cek, padded []byte) []byte {
	t.Helper()
	id, err := RecipientKeyID(pub)
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, cek, nil)
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		t.Fatal(err)
	}
	iv := make([]byte, aes.BlockSize)
	ct := make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, padded)
	return (&Envelope{RecipientKeyID: id, EncryptedKey: wrapped, IV: iv, Ciphertext: ct}).marshal()
}

func TestOpenChecksPaddingAndKeySize(t *testing.T) {
	_, key := loadKMSVector(t)
	cek := bytes.Repeat([]byte{7}, 32)
	block := func(tail ...byte) []byte { return append(bytes.Repeat([]byte{'a'}, 16-len(tail)), tail...) }
	tests := []struct {
		name   string
		cek    []byte
		padded []byte
		want   []byte // nil means ErrDecrypt
	}{
		{"one pad byte", cek, block(1), bytes.Repeat([]byte{'a'}, 15)},
		{"full pad block", cek, append(block(), bytes.Repeat([]byte{16}, 16)...), block()},
		{"pad byte zero", cek, block(0), nil},
		{"pad byte 17", cek, append(block(), bytes.Repeat([]byte{17}, 16)...), nil},
		{"pad byte 255", cek, block(255), nil},
		{"inconsistent pad", cek, block(3, 2, 3), nil},
		{"pad longer than content", cek, block(9, 9, 9), nil},
		{"AES-128 content key", cek[:16], block(1), nil},
		{"AES-192 content key", cek[:24], block(1), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Open(sealRaw(t, &key.PublicKey, tt.cek, tt.padded), key)
			if tt.want == nil {
				if err != ErrDecrypt || got != nil {
					t.Fatalf("Open = %x, %v; want nil, ErrDecrypt", got, err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("Open = %x, %v; want %x", got, err, tt.want)
			}
		})
	}
}

// TestOpenIsNotAuthenticated pins down the property the package doc warns
// about: CBC without a MAC lets an attacker change plaintext undetected.
func TestOpenIsNotAuthenticated(t *testing.T) {
	v, key := loadKMSVector(t)
	env, err := Parse(v.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	env.IV[0] ^= 1
	got, err := Open(env.marshal(), key)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	want := bytes.Clone(v.Plaintext)
	want[0] ^= 1
	if !bytes.Equal(got, want) {
		t.Fatalf("Open = %x, want %x", got, want)
	}
}

// TestUnpadAgreesWithReference checks the constant-time unpad against a
// plain one for every pad value and every single-byte corruption of it.
func TestUnpadAgreesWithReference(t *testing.T) {
	reference := func(buf []byte) (int, bool) {
		p := int(buf[len(buf)-1])
		if p < 1 || p > aes.BlockSize {
			return 0, false
		}
		for _, b := range buf[len(buf)-p:] {
			if int(b) != p {
				return 0, false
			}
		}
		return len(buf) - p, true
	}
	for p := range 256 {
		for corrupt := -1; corrupt < 2*aes.BlockSize; corrupt++ {
			buf := bytes.Repeat([]byte{byte(p)}, 2*aes.BlockSize)
			if corrupt >= 0 {
				buf[corrupt] ^= 0x40
			}
			wantN, wantOK := reference(buf)
			gotN, gotOK := unpad(buf)
			if gotOK != wantOK || (wantOK && gotN != wantN) {
				t.Fatalf("unpad(%x) = %d, %v; want %d, %v", buf, gotN, gotOK, wantN, wantOK)
			}
		}
	}
}
