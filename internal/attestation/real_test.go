package attestation_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/attestation"
)

var sentinels = []error{
	attestation.ErrMalformed,
	attestation.ErrUnsupportedAlgorithm,
	attestation.ErrUntrustedChain,
	attestation.ErrExpired,
	attestation.ErrBadSignature,
}

// checkRefused asserts the contract on failure: a nil Document and an
// error matching want and no other sentinel.
func checkRefused(t *testing.T, doc *attestation.Document, err, want error) {
	t.Helper()
	if doc != nil {
		t.Errorf("got a Document together with error %v", err)
	}
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	for _, s := range sentinels {
		if s != want && errors.Is(err, s) {
			t.Errorf("err = %v also matches %v", err, s)
		}
	}
}

func TestVerifyRealDocument(t *testing.T) {
	raw, at, v := loadRealVector(t)
	if v.Source == "" {
		t.Error("vector lost its _source")
	}
	for name, doc := range map[string][]byte{
		"untagged": raw,
		"tagged":   append([]byte{0xd2}, raw...),
	} {
		t.Run(name, func(t *testing.T) {
			got, err := attestation.Verify(doc, attestation.Options{CurrentTime: at})
			if err != nil {
				t.Fatal(err)
			}
			if got.ModuleID != v.ModuleID {
				t.Errorf("ModuleID = %q, want %q", got.ModuleID, v.ModuleID)
			}
			if !got.Timestamp.Equal(at) {
				t.Errorf("Timestamp = %v, want %v", got.Timestamp, at)
			}
			if got.Digest != "SHA384" || len(got.PCRs) != 16 {
				t.Errorf("Digest = %q, %d PCRs; want SHA384, 16", got.Digest, len(got.PCRs))
			}
			for i := range 16 {
				if len(got.PCRs[i]) != 48 {
					t.Errorf("PCR%d is %d bytes", i, len(got.PCRs[i]))
				}
			}
			if got.Nonce != nil || len(got.UserData) != 32 || len(got.PublicKey) != 130 {
				t.Errorf("nonce %x, user_data %d bytes, public_key %d bytes; want nil, 32, 130",
					got.Nonce, len(got.UserData), len(got.PublicKey))
			}
			if cn := got.Certificate.Subject.CommonName; cn != v.ModuleID+".us-east-1.aws" {
				t.Errorf("leaf CN = %q", cn)
			}
		})
	}
}

func TestVerifyRealDocumentExpired(t *testing.T) {
	raw, at, _ := loadRealVector(t)
	for name, when := range map[string]time.Time{
		"now (zero CurrentTime)": {},
		"after the leaf":         at.Add(3 * time.Hour),
		"before the leaf":        at.Add(-2 * time.Hour),
	} {
		t.Run(name, func(t *testing.T) {
			doc, err := attestation.Verify(raw, attestation.Options{CurrentTime: when})
			checkRefused(t, doc, err, attestation.ErrExpired)
			var invalid x509.CertificateInvalidError
			if !errors.As(err, &invalid) {
				t.Errorf("err = %v, want it to wrap x509.CertificateInvalidError", err)
			}
		})
	}
}

func TestVerifyRealDocumentWrongRoot(t *testing.T) {
	raw, at, _ := loadRealVector(t)
	other := newChain(t)
	doc, err := attestation.Verify(raw, attestation.Options{
		Roots:       []*x509.Certificate{other.root},
		CurrentTime: at,
	})
	checkRefused(t, doc, err, attestation.ErrUntrustedChain)
}

// flips lists byte positions and the masks to XOR into them: a sample
// across the whole document, plus every byte of the COSE header, the start
// of the payload and the signature's edges with several masks.
func flips(doc []byte) map[int][]byte {
	pos := map[int][]byte{}
	for i := 0; i < len(doc); i += 29 {
		pos[i] = []byte{0x01}
	}
	sig := len(doc) - 96
	for _, i := range []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, sig - 2, sig - 1, sig, sig + 1, sig + 47, sig + 48, len(doc) - 1} {
		pos[i] = []byte{0x01, 0x80, 0xff}
	}
	return pos
}

func TestVerifyRealDocumentByteFlips(t *testing.T) {
	raw, at, _ := loadRealVector(t)
	opts := attestation.Options{CurrentTime: at}
	for i, masks := range flips(raw) {
		for _, mask := range masks {
			doc := bytes.Clone(raw)
			doc[i] ^= mask
			got, err := attestation.Verify(doc, opts)
			if err == nil || got != nil {
				t.Fatalf("byte %d ^ %#x: accepted (err %v)", i, mask, err)
			}
		}
	}
	// The signature's bytes are all checked by the signature alone.
	sig := len(raw) - 96
	for _, i := range []int{sig, sig + 47, sig + 48, len(raw) - 1} {
		doc := bytes.Clone(raw)
		doc[i] ^= 0x01
		got, err := attestation.Verify(doc, opts)
		checkRefused(t, got, err, attestation.ErrBadSignature)
	}
}

func TestVerifyRealDocumentTruncated(t *testing.T) {
	raw, at, _ := loadRealVector(t)
	for _, n := range []int{0, 1, 6, 7, 100, len(raw) / 2, len(raw) - 1} {
		got, err := attestation.Verify(raw[:n], attestation.Options{CurrentTime: at})
		checkRefused(t, got, err, attestation.ErrMalformed)
	}
}

func TestAWSRoot(t *testing.T) {
	root, err := attestation.AWSRoot()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(root.Raw)
	if got := hex.EncodeToString(sum[:]); got != "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b" {
		t.Errorf("fingerprint %s", got)
	}
	// The embedded copy must be the one in testdata (from shared/nitro).
	data, err := os.ReadFile("testdata/aws-nitro-enclaves-root-g1.pem")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || !bytes.Equal(block.Bytes, root.Raw) {
		t.Error("embedded root differs from testdata/aws-nitro-enclaves-root-g1.pem")
	}
	if root.Subject.CommonName != "aws.nitro-enclaves" {
		t.Errorf("subject %q", root.Subject)
	}
}
