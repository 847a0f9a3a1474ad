package nsm

import (
	"crypto/sha512"

	"github.com/tmkms-nitro/tmkms-nitro/internal/pcr"
)

// PCR0 is the software NSM's stand-in for PCR0, measured over the enclave
// binary. A real PCR0 is measured over the EIF's kernel, command line and
// ramdisks (package pcr), so the two never match; what they share is the
// property local mode needs: a different binary gives a different PCR0.
// Here PCR0 = SHA-384(48 zero bytes || SHA-384(binary)).
func PCR0(binary []byte) []byte {
	sum := sha512.Sum384(binary)
	v := pcr.Extend([pcr.Size]byte{}, sum[:])
	return v[:]
}
