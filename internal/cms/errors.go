package cms

import (
	"errors"
	"fmt"
)

// Every error from Parse and Open wraps exactly one of these, so callers can
// sort refusals with errors.Is. Seal may also fail on its random source.
var (
	// ErrMalformed means the bytes are not valid BER or not a valid
	// EnvelopedData (truncation, trailing data, bad lengths, wrong tags,
	// missing fields, a bad IV or ciphertext length).
	ErrMalformed = errors.New("cms: malformed envelope")

	// ErrUnsupported means a well-formed envelope that is not the shape KMS
	// emits: another content type, version, recipient kind or count,
	// algorithm or parameter set, or an envelope over the size limit.
	ErrUnsupported = errors.New("cms: unsupported envelope")

	// ErrWrongRecipient means the envelope's rid is not the key ID of the
	// key given to Open.
	ErrWrongRecipient = errors.New("cms: envelope is for another recipient")

	// ErrDecrypt means the content key could not be unwrapped or the content
	// did not decrypt to correctly padded plaintext. It deliberately carries
	// no detail.
	ErrDecrypt = errors.New("cms: failed to decrypt envelope")

	// ErrInvalidKey means the key passed to Open or Seal is unusable.
	ErrInvalidKey = errors.New("cms: invalid key")
)

// A ParseError says where an envelope was refused and why. It unwraps to
// ErrMalformed or ErrUnsupported.
type ParseError struct {
	Offset int    // byte offset of the offending element in the envelope
	Field  string // the CMS field being read, or "" for a BER-level fault
	Reason string // what was wrong, in words
	Err    error  // ErrMalformed or ErrUnsupported
}

func (e *ParseError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%v: %s (offset %d)", e.Err, e.Reason, e.Offset)
	}
	return fmt.Sprintf("%v: %s: %s (offset %d)", e.Err, e.Field, e.Reason, e.Offset)
}

func (e *ParseError) Unwrap() error { return e.Err }

// malformed and unsupported build ParseErrors; field may be "".
func malformed(off int, field, format string, args ...any) error {
	return &ParseError{Offset: off, Field: field, Reason: fmt.Sprintf(format, args...), Err: ErrMalformed}
}

func unsupported(off int, field, format string, args ...any) error {
	return &ParseError{Offset: off, Field: field, Reason: fmt.Sprintf(format, args...), Err: ErrUnsupported}
}
