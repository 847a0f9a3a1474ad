package kms

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Sentinel errors, one per class of failure a caller acts on differently.
// Every error from a Client operation is an *Error matching exactly one of
// these (or ErrNoCredentials/ErrCredentialsExpired) with errors.Is.
var (
	// ErrAccessDenied: KMS refused by policy (AccessDeniedException), e.g.
	// the attested PCRs do not match the key policy. The message names the
	// denial.
	ErrAccessDenied = errors.New("kms: access denied")
	// ErrInvalidCiphertext: the ciphertext is corrupt, or the encryption
	// context differs from the one it was made with.
	ErrInvalidCiphertext = errors.New("kms: invalid ciphertext")
	// ErrWrongKey: the ciphertext is under another key than the one named
	// (IncorrectKeyException), or a response was for another key.
	ErrWrongKey = errors.New("kms: wrong key")
	// ErrKeyUnavailable: the key does not exist, is disabled or pending
	// deletion.
	ErrKeyUnavailable = errors.New("kms: key unavailable")
	// ErrAuthentication: KMS did not accept the request's signature or
	// credentials (UnrecognizedClientException, InvalidSignatureException).
	ErrAuthentication = errors.New("kms: authentication failed")
	// ErrInvalidRequest: KMS rejected a parameter (ValidationException,
	// an attestation document it could not verify, a malformed policy).
	ErrInvalidRequest = errors.New("kms: invalid request")
	// ErrTLS: the TLS handshake failed, typically because the server's
	// certificate does not chain to the pinned roots or names another host.
	ErrTLS = errors.New("kms: TLS failure")
	// ErrNetwork: the request could not be sent or answered (dial, reset,
	// timeout, cancellation).
	ErrNetwork = errors.New("kms: network failure")
	// ErrBadResponse: the response broke the protocol's promises: a
	// Plaintext despite a Recipient, a missing or unopenable envelope.
	ErrBadResponse = errors.New("kms: invalid response")
	// ErrService: any other error KMS reported (throttling, internal).
	ErrService = errors.New("kms: service error")
)

// Error is a failed operation.
type Error struct {
	Op      string // the KMS operation, e.g. "Decrypt"
	Kind    error  // one of the sentinel errors
	Code    string // the AWS error code, e.g. "AccessDeniedException"; empty if KMS did not answer
	Message string // KMS's message; empty if KMS did not answer
	Err     error  // the underlying error, if any
}

func (e *Error) Error() string {
	kind := strings.TrimPrefix(e.Kind.Error(), "kms: ")
	switch {
	case e.Code != "":
		return fmt.Sprintf("kms: %s: %s: %s: %s", e.Op, kind, e.Code, e.Message)
	case e.Err != nil:
		return fmt.Sprintf("kms: %s: %s: %v", e.Op, kind, e.Err)
	}
	return fmt.Sprintf("kms: %s: %s: %s", e.Op, kind, e.Message)
}

// Unwrap gives both the sentinel and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

func newError(op string, kind error, format string, args ...any) *Error {
	return &Error{Op: op, Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// classify turns an SDK error into an *Error.
func classify(op string, err error) *Error {
	e := &Error{Op: op, Err: err}
	var api smithy.APIError
	switch {
	case errors.Is(err, ErrNoCredentials):
		e.Kind = ErrNoCredentials
	case errors.Is(err, ErrCredentialsExpired):
		e.Kind = ErrCredentialsExpired
	case errors.As(err, &api):
		e.Kind, e.Code, e.Message = codeKind(api.ErrorCode()), api.ErrorCode(), api.ErrorMessage()
	case isTLSError(err):
		e.Kind = ErrTLS
	case isNetworkError(err):
		e.Kind = ErrNetwork
	default:
		e.Kind = ErrService
	}
	return e
}

func codeKind(code string) error {
	switch code {
	case "AccessDeniedException":
		return ErrAccessDenied
	case "InvalidCiphertextException":
		return ErrInvalidCiphertext
	case "IncorrectKeyException":
		return ErrWrongKey
	case "NotFoundException", "DisabledException", "KMSInvalidStateException", "KeyUnavailableException":
		return ErrKeyUnavailable
	case "ExpiredTokenException":
		return ErrCredentialsExpired
	case "UnrecognizedClientException", "InvalidSignatureException", "IncompleteSignatureException",
		"MissingAuthenticationTokenException", "InvalidClientTokenId", "SignatureDoesNotMatch":
		return ErrAuthentication
	case "ValidationException", "SerializationException", "UnsupportedOperationException",
		"MalformedPolicyDocumentException", "InvalidKeyUsageException", "InvalidArnException",
		"InvalidGrantTokenException", "UnknownOperationException":
		return ErrInvalidRequest
	}
	return ErrService
}

func isTLSError(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		alert    tls.AlertError
		record   tls.RecordHeaderError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &alert) || errors.As(err, &record)
}

func isNetworkError(err error) bool {
	var (
		send *smithyhttp.RequestSendError
		nerr net.Error
	)
	return errors.As(err, &send) || errors.As(err, &nerr) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
