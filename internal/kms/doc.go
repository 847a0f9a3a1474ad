// Package kms is the enclave's AWS KMS client: Decrypt, GenerateDataKey and
// GenerateRandom with a Nitro Enclaves Recipient (the plaintext comes back
// sealed to the enclave's attested RSA key and is opened here with package
// cms), and Encrypt. It wraps the unmodified aws-sdk-go-v2 KMS client with
// an injected dialer (vsock to the host's proxy in production), credentials
// the host pushes and refreshes (Credentials), and a pinned TLS root pool.
//
// What it trusts: the TLS roots it is given (by default the embedded Amazon
// Trust Services roots, checked against their SHA-256 fingerprints; never
// the system pool), and the KMS server that proves itself with them, for
// the hostname kms.<region>.amazonaws.com whatever the dialer connects to.
// It does not trust the host: the host supplies the connection and the
// credentials, but cannot read a CiphertextForRecipient or pose as KMS.
//
// What it must never do: accept a plaintext Plaintext in a response to a
// request that carried a Recipient, accept a response for another key than
// the one asked for, fall back to the system roots or an environment proxy,
// or put plaintexts, private keys or secret access keys in errors or logs.
package kms
