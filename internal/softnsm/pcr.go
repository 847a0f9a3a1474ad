package softnsm

import (
	"crypto/sha512"
	"fmt"
	"io"
	"os"

	"github.com/tmkms-nitro/tmkms-nitro/internal/pcr"
)

// PCR0 is the software NSM's stand-in for PCR0, measured over the enclave
// binary. A real PCR0 is measured over the EIF's kernel, command line and
// ramdisks (package pcr), so the two never match; what they share is the
// property local mode needs: a different binary gives a different PCR0.
// Here PCR0 = SHA-384(48 zero bytes || SHA-384(binary)).
func PCR0(binary []byte) []byte {
	sum := sha512.Sum384(binary)
	return pcr0(sum[:])
}

// PCR0File is PCR0 of the program at path, hashed as a stream: an enclave
// measuring itself must not hold its whole binary in memory.
func PCR0File(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("nsm: cannot measure %s: %w", path, err)
	}
	defer f.Close()
	h := sha512.New384()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("nsm: cannot measure %s: %w", path, err)
	}
	return pcr0(h.Sum(nil)), nil
}

func pcr0(digest []byte) []byte {
	v := pcr.Extend([pcr.Size]byte{}, digest)
	return v[:]
}
