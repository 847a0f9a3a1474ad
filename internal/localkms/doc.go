// Package localkms is a local AWS KMS: an HTTPS server speaking the KMS JSON
// 1.1 protocol (POST /, X-Amz-Target: TrentService.<Op>) well enough that the
// unmodified aws-sdk-go-v2 KMS client works against it, for local mode and
// tests. It implements CreateKey, DescribeKey, Encrypt, Decrypt,
// GenerateDataKey, GenerateRandom, GetKeyPolicy and PutKeyPolicy, including
// the Nitro Enclaves Recipient parameter.
//
// What it trusts: only requests signed (SigV4) with one of the two sets of
// credentials it issued, the instance role's (an STS session) and an
// administrator's (an IAM user), each acting as its own principal in key
// policies; and only attestation documents that chain to the roots it was
// explicitly configured with (typically the software NSM's CA; never the
// AWS Nitro root unless that is passed in). Every operation on a
// key is authorized by evaluating the key's policy with package kmspolicy,
// with the PCR condition keys taken from a verified attestation document.
//
// What it must never do: answer an unauthenticated or unauthorized request
// with anything but an AWS-shaped error, return a Plaintext when the request
// carried a Recipient (the plaintext is then only sealed to the attested
// key), or put key material, plaintexts or the secret access key in logs or
// error messages. It is not AWS: its ciphertexts are its own format, and its
// data directory holds key material in the clear (files 0600, directories
// 0700), so it is for development and tests, never for a production key.
package localkms
