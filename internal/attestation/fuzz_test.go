package attestation_test

import (
	"crypto/x509"
	"errors"
	"testing"

	"github.com/tmkms-nitro/tmkms-nitro/internal/attestation"
)

// FuzzVerify checks that Verify never panics, returns a Document or an
// error but never both, and that every error belongs to a sentinel class.
// Options reach the signature check for both seeds (their roots, their
// times), so mutations exercise every stage. The seeds are about 5 KB, so
// give minimisation a short budget or short runs stall in it:
//
//	go test -run '^$' -fuzz FuzzVerify -fuzztime 30s -fuzzminimizetime 3s
func FuzzVerify(f *testing.F) {
	realDoc, realAt, _ := loadRealVector(f)
	soft, softRoot, softAt, _ := loadSoftwareVector(f)
	f.Add(realDoc)
	f.Add(soft)
	f.Add(append([]byte{0xd2}, realDoc...))
	optionSets := []attestation.Options{
		{CurrentTime: realAt},
		{Roots: []*x509.Certificate{softRoot}, CurrentTime: softAt},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Verify refuses more than MaxDocumentSize first; bounded, an
		// execution checks at most two chains of maxCABundle certificates.
		if len(data) > attestation.MaxDocumentSize+1 {
			return
		}
		for _, opts := range optionSets {
			doc, err := attestation.Verify(data, opts)
			if (doc == nil) == (err == nil) {
				t.Fatalf("Verify = %v, %v: want exactly one of them", doc, err)
			}
			if err != nil && !isSentinel(err) {
				t.Fatalf("error %v matches no sentinel", err)
			}
		}
	})
}

func isSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
