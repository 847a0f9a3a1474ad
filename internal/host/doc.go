// Package host is the EC2 side of the signer (tmkms-nitro-helper start): it
// configures the enclave and keeps it configured, persists the enclave's
// double-sign state durably before any signature is released, bridges the
// enclave's connection to the validator, and relays the enclave's logs.
//
// The host is trusted with availability, not with keys: it never sees a key
// in plaintext, and the enclave never lets host-provided state lower what it
// already knows.
package host
