// Package pcr computes AWS Nitro Enclaves measurements (platform
// configuration registers) the way nitro-cli and the Nitro hypervisor do:
// PCR0/1/2 from an enclave image file (EIF), PCR3 from the parent's IAM role
// ARN, PCR4 from the parent's instance ID and PCR8 from the EIF signing
// certificate. Operators use the values to fill a KMS key policy
// (internal/kmspolicy); CI uses them to check that a build is reproducible.
//
// Every measured register is a single extend of a zeroed register:
// PCR = SHA-384(48 zero bytes || m). For PCR3 and PCR4, m is the UTF-8 string
// itself; for PCR0/1/2 and PCR8, m is the SHA-384 of the measured content
// (aws-nitro-enclaves-image-format, EifHasher::tpm_extend_finalize_reset with
// new_without_cache).
//
// It trusts nothing it reads: an EIF is parsed strictly, with every offset and
// size checked against the file before use, and section data is streamed
// through the hashes rather than loaded. It must never panic or allocate in
// proportion to sizes claimed by a file, and never return measurements for a
// file that nitro-cli would measure differently (trailing data, a bad CRC,
// sections that disagree with the header are all errors).
package pcr

import (
	"crypto/sha512"
	"encoding/hex"
	"fmt"
)

// Size is the length of a Nitro Enclaves PCR: the output of SHA-384.
const Size = sha512.Size384

// Extend returns SHA-384(prev || data), the NSM's ExtendPCR operation.
func Extend(prev [Size]byte, data []byte) [Size]byte {
	h := sha512.New384()
	h.Write(prev[:])
	h.Write(data)
	var out [Size]byte
	h.Sum(out[:0])
	return out
}

// measure is how nitro-cli turns content into a PCR: extend a zero register
// with the digest of the content, not the content itself.
func measure(digest [Size]byte) [Size]byte {
	return Extend([Size]byte{}, digest[:])
}

// PCR3 returns the PCR3 of an enclave whose parent instance has the IAM role
// roleARN, e.g. "arn:aws:iam::123456789012:role/Webserver". The ARN is
// extended as is, not hashed first.
func PCR3(roleARN string) [Size]byte {
	return Extend([Size]byte{}, []byte(roleARN))
}

// PCR4 returns the PCR4 of an enclave whose parent is the EC2 instance
// instanceID, e.g. "i-1234567890abcdef0". This is tmkms-light's Nitro guide's
// python one-liner: sha384(b'\0'*48 + instance_id.encode('utf-8')).
func PCR4(instanceID string) [Size]byte {
	return Extend([Size]byte{}, []byte(instanceID))
}

// PCR8 returns the PCR8 of an EIF signed with the certificate whose DER
// encoding is certDER: SHA-384(48 zero bytes || SHA-384(certDER)).
func PCR8(certDER []byte) [Size]byte {
	return measure(sha512.Sum384(certDER))
}

// Hex returns v as lower-case hex, the form nitro-cli prints and KMS key
// policies use.
func Hex(v [Size]byte) string {
	return hex.EncodeToString(v[:])
}

// decodeHex parses a PCR printed as 96 hex digits, in either case.
func decodeHex(s string) ([Size]byte, error) {
	var v [Size]byte
	if len(s) != 2*Size {
		return v, fmt.Errorf("PCR must be %d hex digits, got %d characters", 2*Size, len(s))
	}
	if _, err := hex.Decode(v[:], []byte(s)); err != nil {
		return [Size]byte{}, fmt.Errorf("PCR is not hex: %w", err)
	}
	return v, nil
}
