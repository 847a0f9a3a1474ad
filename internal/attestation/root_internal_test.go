package attestation

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// TestPinnedRootFailsClosed covers what AWSRoot cannot reach: a swapped or
// damaged embedded file must refuse every document, not trust it.
func TestPinnedRootFailsClosed(t *testing.T) {
	other := strings.Repeat("00", 32)
	tests := []struct {
		name, pem, sum string
	}{
		{"fingerprint mismatch", awsRootPEM, other},
		{"not PEM", "not a certificate", awsRootSHA256},
		{"two blocks", awsRootPEM + awsRootPEM, awsRootSHA256},
		{"wrong block type", strings.ReplaceAll(awsRootPEM, "CERTIFICATE", "PUBLIC KEY"), awsRootSHA256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, err := pinnedRoot(tt.pem, tt.sum)
			if root != nil || !errors.Is(err, ErrUntrustedChain) {
				t.Fatalf("pinnedRoot = %v, %v; want nil, ErrUntrustedChain", root, err)
			}
		})
	}
	if _, err := pinnedRoot(awsRootPEM, awsRootSHA256); err != nil {
		t.Fatal(err)
	}
}

// TestSigDigestStructure pins the Sig_structure bytes COSE signs.
func TestSigDigestStructure(t *testing.T) {
	want := "84" + "6a" + "5369676e617475726531" + "44" + "a1013822" + "40" + "43" + "a16178"
	tbs, err := sigStructure([]byte{0xa1, 0x01, 0x38, 0x22}, []byte{0xa1, 0x61, 0x78})
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(tbs); got != want {
		t.Errorf("Sig_structure = %s, want %s", got, want)
	}
}
