package localkms

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"
)

// A ciphertext blob is this server's own format, versioned so it can change:
//
//	"lkms" | version (1 byte, 1) | len(key ID) (1 byte) | key ID | nonce (12) | AES-256-GCM(plaintext) with tag
//
// The GCM additional data is everything before the sealed bytes followed by
// the canonical encryption context, so a blob decrypts only under its own
// key with exactly the context it was made with.
const (
	blobMagic   = "lkms"
	blobVersion = 1
	nonceSize   = 12
	// maxCiphertextBlob is AWS's limit on CiphertextBlob.
	maxCiphertextBlob = 6144
	// maxPlaintext is AWS's limit on Encrypt's Plaintext.
	maxPlaintext = 4096
)

// blob is a parsed ciphertext blob.
type blob struct {
	keyID  string
	header []byte // magic through nonce
	sealed []byte
}

func parseBlob(b []byte) (*blob, error) {
	bad := errInvalidCiphertext("The ciphertext is not a valid local KMS ciphertext blob.")
	if len(b) > maxCiphertextBlob || len(b) < len(blobMagic)+2 || string(b[:len(blobMagic)]) != blobMagic {
		return nil, bad
	}
	if b[len(blobMagic)] != blobVersion {
		return nil, errInvalidCiphertext("Unsupported local KMS ciphertext version %d.", b[len(blobMagic)])
	}
	idLen := int(b[len(blobMagic)+1])
	headerLen := len(blobMagic) + 2 + idLen + nonceSize
	if len(b) < headerLen+16 {
		return nil, bad
	}
	id := string(b[len(blobMagic)+2 : len(blobMagic)+2+idLen])
	if !isKeyID(id) {
		return nil, bad
	}
	return &blob{keyID: id, header: b[:headerLen], sealed: b[headerLen:]}, nil
}

func gcm(k *key) (cipher.AEAD, error) {
	block, err := aes.NewCipher(k.Material)
	if err != nil {
		return nil, fmt.Errorf("localkms: key %s: %w", k.KeyID, err)
	}
	return cipher.NewGCM(block)
}

func sealBlob(k *key, plaintext []byte, encCtx map[string]string) ([]byte, error) {
	aead, err := gcm(k)
	if err != nil {
		return nil, err
	}
	header := append([]byte(blobMagic), blobVersion, byte(len(k.KeyID)))
	header = append(header, k.KeyID...)
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("localkms: failed to generate nonce: %w", err)
	}
	header = append(header, nonce...)
	aad := append(slices.Clip(header), canonicalContext(encCtx)...)
	return aead.Seal(header, nonce, plaintext, aad), nil
}

// openBlob decrypts b with k. Any failure is the same InvalidCiphertext,
// as AWS gives no detail either: a wrong context and a corrupted blob look
// alike.
func openBlob(k *key, b *blob, encCtx map[string]string) ([]byte, error) {
	aead, err := gcm(k)
	if err != nil {
		return nil, err
	}
	nonce := b.header[len(b.header)-nonceSize:]
	aad := append(slices.Clip(b.header), canonicalContext(encCtx)...)
	pt, err := aead.Open(nil, nonce, b.sealed, aad)
	if err != nil {
		return nil, errInvalidCiphertext("The ciphertext is invalid or the encryption context does not match.")
	}
	return pt, nil
}

// canonicalContext encodes an encryption context unambiguously and
// independently of map order: pairs sorted by key, each string prefixed
// with its 4-byte big-endian length.
func canonicalContext(encCtx map[string]string) []byte {
	keys := make([]string, 0, len(encCtx))
	for k := range encCtx {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []byte
	for _, k := range keys {
		out = binary.BigEndian.AppendUint32(out, uint32(len(k)))
		out = append(out, k...)
		out = binary.BigEndian.AppendUint32(out, uint32(len(encCtx[k])))
		out = append(out, encCtx[k]...)
	}
	return out
}
