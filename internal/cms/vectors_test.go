package cms

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// The vectors are copies of /work/shared/nitro/*.json; their _source fields
// say where they come from.

type hexBytes []byte

func (h *hexBytes) UnmarshalText(text []byte) error {
	b, err := hex.DecodeString(string(text))
	*h = b
	return err
}

// kmsVector is a real CiphertextForRecipient with the key that opens it.
type kmsVector struct {
	Source    string   `json:"_source"`
	KeyPEM    string   `json:"recipient_private_key_pkcs1_pem"`
	Envelope  []byte   `json:"ciphertext_for_recipient_b64"` // encoding/json decodes base64
	Plaintext hexBytes `json:"expected_plaintext_hex"`
}

// parseVector is a real envelope with the fields Parse must extract.
type parseVector struct {
	name                         string
	envelope                     []byte
	encryptedKey, iv, ciphertext []byte
}

type sdkcFile struct {
	Source        string   `json:"_source"`
	Input         hexBytes `json:"input_ber"`
	EncryptedKey  hexBytes `json:"encrypted_key_out"`
	IV            hexBytes `json:"iv_out"`
	Ciphertext    hexBytes `json:"ciphertext_out"`
	InputCtx      hexBytes `json:"input_ber_w_ctx"`
	EncryptedKeyC hexBytes `json:"encrypted_key_out_w_ctx"`
	IVCtx         hexBytes `json:"iv_out_w_ctx"`
	CiphertextCtx hexBytes `json:"ciphertext_out_w_ctx"`
}

func readJSON(tb testing.TB, name string, v any) {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatalf("vector missing: %v", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		tb.Fatalf("failed to decode %s: %v", name, err)
	}
}

func loadKMSVector(tb testing.TB) (kmsVector, *rsa.PrivateKey) {
	tb.Helper()
	var v kmsVector
	readJSON(tb, "kms-ciphertext-for-recipient-vector.json", &v)
	block, _ := pem.Decode([]byte(v.KeyPEM))
	if block == nil || v.Source == "" || len(v.Envelope) == 0 || len(v.Plaintext) == 0 {
		tb.Fatal("kms vector is incomplete")
	}
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		tb.Fatalf("failed to parse vector key: %v", err)
	}
	return v, key
}

func loadParseVectors(tb testing.TB) []parseVector {
	tb.Helper()
	var f sdkcFile
	readJSON(tb, "kms-cms-parse-vectors-sdk-c.json", &f)
	if f.Source == "" || len(f.Input) == 0 || len(f.InputCtx) == 0 {
		tb.Fatal("sdk-c vectors are incomplete")
	}
	return []parseVector{
		{"sdk-c chunked content", f.Input, f.EncryptedKey, f.IV, f.Ciphertext},
		{"sdk-c primitive content", f.InputCtx, f.EncryptedKeyC, f.IVCtx, f.CiphertextCtx},
	}
}

// otherKey is a second RSA-2048 key, generated once because it is slow.
var otherKey = sync.OnceValues(func() (*rsa.PrivateKey, error) {
	return rsa.GenerateKey(rand.Reader, 2048)
})

func mustOtherKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	key, err := otherKey()
	if err != nil {
		t.Fatalf("failed to generate key: %v", err)
	}
	return key
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
