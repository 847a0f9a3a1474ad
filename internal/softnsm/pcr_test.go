package softnsm_test

import (
	"bytes"
	"crypto/sha512"
	"testing"

	"github.com/tmkms-nitro/tmkms-nitro/internal/nsm"
	"github.com/tmkms-nitro/tmkms-nitro/internal/softnsm"
)

func TestPCR0IsAnExtendOfTheBinaryHash(t *testing.T) {
	bin := []byte("\x7fELF enclave binary")
	sum := sha512.Sum384(bin)
	h := sha512.New384()
	h.Write(make([]byte, 48))
	h.Write(sum[:])
	if got := softnsm.PCR0(bin); !bytes.Equal(got, h.Sum(nil)) || len(got) != nsm.PCRSize {
		t.Errorf("PCR0 = %x", got)
	}
	changed := append(bytes.Clone(bin), 0)
	if bytes.Equal(softnsm.PCR0(bin), softnsm.PCR0(changed)) {
		t.Error("changing the binary did not change PCR0")
	}
}
