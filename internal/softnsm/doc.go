// Package softnsm is the Nitro Secure Module of local mode: a CA that
// imitates AWS's attestation chain (CA), an NSM that signs attestation
// documents with it (Software), and a server that answers an enclave's
// device requests on a unix socket (Server).
//
// Its documents chain only to its own root: it must never be wired up where
// a real enclave is expected, and a verifier must trust its root only when
// explicitly told to. It is linked into the helper and the tests, never into
// the enclave program.
package softnsm
