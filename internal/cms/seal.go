package cms

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"io"
)

// MaxPlaintextSize bounds what Seal accepts, keeping every sealed envelope
// well under MaxEnvelopeSize whatever the recipient's key size.
const MaxPlaintextSize = 32 << 10

// chunkSize is the length of each OCTET STRING chunk in a constructed
// encryptedContent. 1000 is the CER limit and BouncyCastle's default; the
// real vectors only show a single 48-byte chunk, so this is our best guess at
// what KMS does for longer content.
const chunkSize = 1000

// Seal encrypts plaintext to recipient in the same shape as KMS's
// CiphertextForRecipient. rand supplies the content key and IV and is passed
// to RSA-OAEP; use crypto/rand.Reader outside tests.
func Seal(plaintext []byte, recipient *rsa.PublicKey, rand io.Reader) ([]byte, error) {
	if len(plaintext) > MaxPlaintextSize {
		return nil, fmt.Errorf("%w: plaintext of %d bytes exceeds the limit of %d", ErrUnsupported, len(plaintext), MaxPlaintextSize)
	}
	id, err := RecipientKeyID(recipient)
	if err != nil {
		return nil, err
	}
	var secret [cekSize + aes.BlockSize]byte
	defer clear(secret[:])
	if _, err := io.ReadFull(rand, secret[:]); err != nil {
		return nil, fmt.Errorf("cms: failed to read content key: %w", err)
	}
	cek, iv := secret[:cekSize], secret[cekSize:]
	wrapped, err := rsa.EncryptOAEP(sha256.New(), rand, recipient, cek, nil)
	if err != nil {
		return nil, fmt.Errorf("cms: failed to wrap content key: %w", err)
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, fmt.Errorf("cms: internal error: %w", err) // unreachable: cek is 32 bytes
	}
	ciphertext := pad(plaintext)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ciphertext, ciphertext)
	env := Envelope{RecipientKeyID: id, EncryptedKey: wrapped, IV: iv, Ciphertext: ciphertext}
	return env.marshal(), nil
}

// marshal encodes e exactly as KMS lays it out: indefinite lengths on the
// ContentInfo, its [0], the EnvelopedData, the EncryptedContentInfo and the
// chunked encryptedContent; definite DER everywhere else.
func (e *Envelope) marshal() []byte {
	return indefinite(tagSequence,
		definite(tagOID, oidEnvelopedData),
		indefinite(tagExplicit0,
			indefinite(tagSequence,
				definite(tagInteger, []byte{versionSKI}),
				definite(tagSet, e.marshalRecipient()),
				e.marshalContent(),
			),
		),
	)
}

func (e *Envelope) marshalRecipient() []byte {
	return definite(tagSequence,
		definite(tagInteger, []byte{versionSKI}),
		definite(tagImplicit0, e.RecipientKeyID[:]),
		keyEncryptionAlgorithm,
		definite(tagOctetString, e.EncryptedKey),
	)
}

func (e *Envelope) marshalContent() []byte {
	var chunks [][]byte
	for rest := e.Ciphertext; len(rest) > 0; {
		n := min(len(rest), chunkSize)
		chunks = append(chunks, definite(tagOctetString, rest[:n]))
		rest = rest[n:]
	}
	return indefinite(tagSequence,
		definite(tagOID, oidData),
		definite(tagSequence, definite(tagOID, oidAES256CBC), definite(tagOctetString, e.IV)),
		indefinite(tagExplicit0, chunks...),
	)
}

// pad appends PKCS#7 padding: 1 to 16 bytes, each equal to the count.
func pad(plaintext []byte) []byte {
	n := aes.BlockSize - len(plaintext)%aes.BlockSize
	out := make([]byte, len(plaintext), len(plaintext)+n)
	copy(out, plaintext)
	for range n {
		out = append(out, byte(n))
	}
	return out
}
