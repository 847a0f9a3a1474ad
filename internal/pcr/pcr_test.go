package pcr

import (
	"crypto/elliptic"
	"crypto/sha512"
	"crypto/x509/pkix"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/localca"
)

// Known answers from the AWS Nitro Enclaves User Guide, "Where to get an
// enclave's measurements" (set-up-attestation), which prints them with the
// same python one-liner as tmkms-light's Nitro guide's step 3.
func TestKnownAnswers(t *testing.T) {
	tests := []struct {
		name string
		got  [Size]byte
		want string
	}{
		{"PCR3 of the guide's role", PCR3("arn:aws:iam::123456789012:role/Webserver"),
			"78fce75db17cd4e0a3fb8dad3ad128ca5e77edbb2b2c7f75329dccd99aa5f6ef4fc1f1a452e315b9e98f9e312e6921e6"},
		{"PCR4 of the guide's instance", PCR4("i-1234567890abcdef0"),
			"08f996b5d43e047a9eb51e7f548bfee7e164fd7dc8f65541f2ac09d6545ac812719327281c401a67a10fcba87ae79ce0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Hex(tt.got); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestExtendIsSHA384OfConcatenation(t *testing.T) {
	var prev [Size]byte
	for i := range prev {
		prev[i] = byte(i)
	}
	want := sha512.Sum384(append(prev[:], "data"...))
	if got := Extend(prev, []byte("data")); got != want {
		t.Errorf("Extend = %x, want %x", got, want)
	}
}

func TestHexRoundTrip(t *testing.T) {
	v := PCR4("i-0123")
	for _, s := range []string{Hex(v), strings.ToUpper(Hex(v))} {
		got, err := decodeHex(s)
		if err != nil {
			t.Fatalf("decodeHex(%q): %v", s, err)
		}
		if got != v {
			t.Errorf("decodeHex(%q) = %x, want %x", s, got, v)
		}
	}
}

func TestParseHexRejects(t *testing.T) {
	for _, s := range []string{"", "00", strings.Repeat("0", 95), strings.Repeat("0", 97), strings.Repeat("g", 96)} {
		if _, err := decodeHex(s); err == nil {
			t.Errorf("decodeHex(%q) succeeded, want an error", s)
		}
	}
}

func TestPCR8(t *testing.T) {
	der := selfSignedDER(t)
	inner := sha512.Sum384(der)
	want := sha512.Sum384(append(make([]byte, Size), inner[:]...))
	if got := PCR8(der); got != want {
		t.Errorf("PCR8 = %x, want %x", got, want)
	}
}

func selfSignedDER(t *testing.T) []byte {
	t.Helper()
	signer, err := localca.New(elliptic.P384(), localca.Spec{Subject: pkix.Name{CommonName: "eif signer"}, Kind: localca.CA, Lifetime: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return signer.Certificate.Raw
}

// naiveMeasure is the README's formula written out independently of the
// package: SHA-384(48 zero bytes || SHA-384(concatenated parts)).
func naiveMeasure(parts ...[]byte) string {
	var all []byte
	for _, p := range parts {
		all = append(all, p...)
	}
	inner := sha512.Sum384(all)
	outer := sha512.Sum384(append(make([]byte, 48), inner[:]...))
	return hex.EncodeToString(outer[:])
}
