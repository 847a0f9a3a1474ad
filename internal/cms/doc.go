// Package cms opens and seals the envelope that AWS KMS returns as
// CiphertextForRecipient when a request carries a Nitro Enclave attestation
// document.
//
// The envelope is an RFC 5652 ContentInfo(EnvelopedData) in BER with
// indefinite lengths. It holds exactly one KeyTransRecipientInfo whose rid is
// a subjectKeyIdentifier equal to SHA-256 of the recipient's DER
// SubjectPublicKeyInfo, a 32-byte content key wrapped with RSAES-OAEP
// (SHA-256, MGF1-SHA-256, empty label), and the content encrypted with
// AES-256-CBC and PKCS#7 padding. [Parse] accepts that shape and nothing
// else, [Open] also unwraps and decrypts it, and [Seal] produces the same
// shape for the local KMS emulator.
//
// What it trusts: the private key handed to Open. The envelope bytes are
// untrusted, because they reach the enclave through the host. Note that the
// envelope is not authenticated: anyone who knows the recipient's public key
// can build one, and CBC without a MAC is malleable. A successful Open
// therefore proves nothing about where the plaintext came from; callers must
// authenticate the channel to KMS (pinned TLS) and check the plaintext (for
// example the derived consensus public key) before relying on it.
//
// What it must never do: panic on any input, return plaintext together with
// an error, or reveal in an error which of the RSA-OAEP, CBC or padding
// steps failed, since that distinction is a padding oracle. All three are
// reported as the bare [ErrDecrypt]. Every other refusal by Parse and Open
// wraps exactly one of the package's sentinel errors.
package cms
