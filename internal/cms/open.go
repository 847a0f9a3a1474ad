package cms

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"fmt"
)

// RecipientKeyID returns the rid KMS puts in an envelope for pub: SHA-256 of
// its DER SubjectPublicKeyInfo.
func RecipientKeyID(pub *rsa.PublicKey) ([sha256.Size]byte, error) {
	if pub == nil || pub.N == nil {
		return [sha256.Size]byte{}, fmt.Errorf("%w: missing RSA public key", ErrInvalidKey)
	}
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("%w: failed to marshal public key: %w", ErrInvalidKey, err)
	}
	return sha256.Sum256(spki), nil
}

// Open parses envelope, checks that it is addressed to key, unwraps the
// content key with RSA-OAEP-SHA256 and returns the AES-256-CBC plaintext.
// See the package documentation for what a successful Open does not prove.
func Open(envelope []byte, key *rsa.PrivateKey) ([]byte, error) {
	if key == nil {
		return nil, fmt.Errorf("%w: missing RSA private key", ErrInvalidKey)
	}
	env, err := Parse(envelope)
	if err != nil {
		return nil, err
	}
	id, err := RecipientKeyID(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	// The rid is public, so a plain comparison and a precise message are fine.
	if env.RecipientKeyID != id {
		return nil, fmt.Errorf("%w: rid %x, this key is %x", ErrWrongRecipient, env.RecipientKeyID, id)
	}
	return env.decrypt(key)
}

// decrypt unwraps the content key and decrypts. All failures return the
// bare ErrDecrypt so that neither the message nor the error value tells an
// attacker which step failed.
func (e *Envelope) decrypt(key *rsa.PrivateKey) ([]byte, error) {
	cek, err := rsa.DecryptOAEP(sha256.New(), nil, key, e.EncryptedKey, nil)
	if err != nil || len(cek) != cekSize {
		return nil, ErrDecrypt
	}
	defer clear(cek)
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, ErrDecrypt
	}
	// Parse guarantees these; checked again because CryptBlocks and unpad
	// would panic without them.
	if len(e.IV) != aes.BlockSize || len(e.Ciphertext) == 0 || len(e.Ciphertext)%aes.BlockSize != 0 {
		return nil, ErrDecrypt
	}
	buf := make([]byte, len(e.Ciphertext))
	cipher.NewCBCDecrypter(block, e.IV).CryptBlocks(buf, e.Ciphertext)
	n, ok := unpad(buf)
	if !ok {
		clear(buf)
		return nil, ErrDecrypt
	}
	return buf[:n:n], nil
}

// unpad returns the length of buf without its PKCS#7 padding. Its timing
// depends only on len(buf), which must be a positive multiple of the block
// size, so it cannot serve as a timing padding oracle either.
func unpad(buf []byte) (int, bool) {
	pad := int(buf[len(buf)-1])
	good := subtle.ConstantTimeLessOrEq(1, pad) & subtle.ConstantTimeLessOrEq(pad, aes.BlockSize)
	tail := buf[len(buf)-aes.BlockSize:]
	for i, b := range tail {
		inPad := subtle.ConstantTimeLessOrEq(aes.BlockSize-i, pad)
		good &= subtle.ConstantTimeSelect(inPad, subtle.ConstantTimeByteEq(b, byte(pad)), 1)
	}
	return len(buf) - pad, good == 1
}
