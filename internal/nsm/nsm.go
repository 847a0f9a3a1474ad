// Package nsm talks to a Nitro Secure Module: the /dev/nsm device inside an
// AWS Nitro Enclave (Open), or, in local mode, the software NSM of package
// softnsm that the helper serves on a unix socket (Socket). Both speak the
// device's CBOR protocol, so the enclave program is the same in both modes.
//
// It trusts the device to answer in the documented CBOR protocol and checks
// that it does; it does not interpret attestation documents, which consumers
// verify with package attestation.
package nsm

import (
	"context"
	"errors"
	"fmt"
)

// NSM is what the enclave needs from the Nitro Secure Module.
// Implementations return an error, never a partial result, and honour ctx
// before starting work (a device request in flight cannot be interrupted).
type NSM interface {
	// Attest returns a signed attestation document (untagged COSE_Sign1)
	// that binds the request's fields to the enclave's PCRs.
	Attest(ctx context.Context, req AttestRequest) ([]byte, error)
	// Random returns n bytes from the module's entropy source.
	Random(ctx context.Context, n int) ([]byte, error)
	// DescribePCR returns the current 48-byte value of PCR index (0..31).
	DescribePCR(ctx context.Context, index int) ([]byte, error)
}

// AttestRequest is what an attestation document carries besides the PCRs.
// Empty fields are absent (CBOR null) in the document.
type AttestRequest struct {
	PublicKey []byte // DER SubjectPublicKeyInfo KMS encrypts to
	UserData  []byte
	Nonce     []byte
}

const (
	// MaxAttestField bounds each AttestRequest field (the attestation
	// document specification's limit).
	MaxAttestField = 1024
	// MaxRandom bounds one Random call; callers want keys and seeds, not
	// streams.
	MaxRandom = 1 << 16
	// PCRCount is the number of PCRs the NSM has; 0..15 are measured and
	// locked at boot, 16..31 are for applications.
	PCRCount = 32
	// PCRSize is the size of a SHA-384 PCR.
	PCRSize = 48
)

// ErrNotSupported is returned by Open on systems without /dev/nsm support.
var ErrNotSupported = errors.New("nsm: not supported")

// DeviceError is an error code returned by the NSM ("InvalidArgument",
// "InvalidIndex", "InputTooLarge", ...). Arguments both implementations can
// check locally (sizes, PCR index) are refused before reaching the device,
// with ordinary errors.
type DeviceError struct {
	Code string
}

func (e *DeviceError) Error() string {
	return fmt.Sprintf("nsm: device returned error %q", e.Code)
}

func (r AttestRequest) Validate() error {
	for _, f := range []struct {
		name string
		b    []byte
	}{{"public key", r.PublicKey}, {"user data", r.UserData}, {"nonce", r.Nonce}} {
		if len(f.b) > MaxAttestField {
			return fmt.Errorf("nsm: attestation %s is %d bytes, limit %d", f.name, len(f.b), MaxAttestField)
		}
	}
	return nil
}

func CheckRandomSize(n int) error {
	if n < 0 || n > MaxRandom {
		return fmt.Errorf("nsm: random size %d out of range 0..%d", n, MaxRandom)
	}
	return nil
}

func CheckPCRIndex(index int) error {
	if index < 0 || index >= PCRCount {
		return fmt.Errorf("nsm: PCR index %d out of range 0..%d", index, PCRCount-1)
	}
	return nil
}

// orNil maps empty to nil so that "absent" has one encoding (CBOR null).
func orNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
