package kms

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"embed"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
)

// The Amazon Trust Services roots, from the Mozilla CA bundle. KMS's
// certificates chain to Amazon Root CA 1; the others are kept because AWS
// may move endpoints to them without notice.
//
//go:embed roots/*.pem
var rootFiles embed.FS

// rootPins maps each embedded file to the SHA-256 of its DER certificate,
// as published by Amazon Trust Services, so a swapped file fails closed.
func rootPins() map[string]string {
	return map[string]string{
		"roots/amazon-root-ca-1.pem": "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e",
		"roots/amazon-root-ca-2.pem": "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4",
		"roots/amazon-root-ca-3.pem": "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4",
		"roots/amazon-root-ca-4.pem": "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092",
	}
}

// ErrRoots means the embedded roots failed their fingerprint check.
var ErrRoots = errors.New("kms: embedded Amazon roots are corrupt")

// AmazonRoots returns a pool holding only the four Amazon Trust Services
// roots, the production default for Config.Roots.
func AmazonRoots() (*x509.CertPool, error) {
	pins := rootPins()
	entries, err := rootFiles.ReadDir("roots")
	if err != nil || len(entries) != len(pins) {
		return nil, fmt.Errorf("%w: expected %d files", ErrRoots, len(pins))
	}
	pool := x509.NewCertPool()
	for name, want := range pins {
		cert, err := pinnedCert(name, want)
		if err != nil {
			return nil, err
		}
		pool.AddCert(cert)
	}
	return pool, nil
}

func pinnedCert(name, wantSHA256 string) (*x509.Certificate, error) {
	data, err := rootFiles.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRoots, err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: %s is not a single PEM certificate", ErrRoots, name)
	}
	sum := sha256.Sum256(block.Bytes)
	if got := hex.EncodeToString(sum[:]); got != wantSHA256 {
		return nil, fmt.Errorf("%w: %s has SHA-256 %s, want %s", ErrRoots, name, got, wantSHA256)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRoots, name, err)
	}
	return cert, nil
}
