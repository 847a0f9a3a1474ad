package localkms

import (
	"fmt"
	"net/http"
)

// apiError is an error in AWS's JSON 1.1 shape: the SDK turns __type into a
// typed error (InvalidCiphertextException, ...) or a generic API error with
// that code (AccessDeniedException, ...), and shows message.
type apiError struct {
	code   string
	status int
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func newAPIError(code string, status int, format string, args ...any) *apiError {
	return &apiError{code: code, status: status, msg: fmt.Sprintf(format, args...)}
}

// The error codes KMS uses, with AWS's HTTP status for each.
func errAccessDenied(format string, args ...any) error {
	return newAPIError("AccessDeniedException", http.StatusBadRequest, format, args...)
}

func errValidation(format string, args ...any) error {
	return newAPIError("ValidationException", http.StatusBadRequest, format, args...)
}

func errNotFound(format string, args ...any) error {
	return newAPIError("NotFoundException", http.StatusBadRequest, format, args...)
}

func errInvalidCiphertext(format string, args ...any) error {
	return newAPIError("InvalidCiphertextException", http.StatusBadRequest, format, args...)
}

func errIncorrectKey(format string, args ...any) error {
	return newAPIError("IncorrectKeyException", http.StatusBadRequest, format, args...)
}

func errMalformedPolicy(format string, args ...any) error {
	return newAPIError("MalformedPolicyDocumentException", http.StatusBadRequest, format, args...)
}

func errUnsupported(format string, args ...any) error {
	return newAPIError("UnsupportedOperationException", http.StatusBadRequest, format, args...)
}

func errUnrecognizedClient(format string, args ...any) error {
	return newAPIError("UnrecognizedClientException", http.StatusBadRequest, format, args...)
}

func errInvalidSignature(format string, args ...any) error {
	return newAPIError("InvalidSignatureException", http.StatusBadRequest, format, args...)
}

func errIncompleteSignature(format string, args ...any) error {
	return newAPIError("IncompleteSignatureException", http.StatusBadRequest, format, args...)
}

func errSerialization(format string, args ...any) error {
	return newAPIError("SerializationException", http.StatusBadRequest, format, args...)
}

func errUnknownOperation(format string, args ...any) error {
	return newAPIError("UnknownOperationException", http.StatusBadRequest, format, args...)
}

// errInternal hides the cause from the client; the server logs it.
var errInternal = newAPIError("KMSInternalException", http.StatusInternalServerError,
	"The request failed because of an internal error in the local KMS; see its log.")
