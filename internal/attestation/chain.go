package attestation

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// awsRootPEM is AWS_NitroEnclaves_Root-G1, from
// https://aws-nitro-enclaves.amazonaws.com/AWS_NitroEnclaves_Root-G1.zip.
// A string, so that nothing can modify it.
//
//go:embed aws_nitro_enclaves_root_g1.pem
var awsRootPEM string

// awsRootSHA256 is the SHA-256 of the root's DER as published by AWS. The
// embedded file is checked against it on every use, so a corrupted or
// swapped file fails closed instead of trusting the wrong root.
const awsRootSHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"

// AWSRoot returns the embedded AWS Nitro Enclaves root certificate after
// checking its fingerprint.
func AWSRoot() (*x509.Certificate, error) {
	return pinnedRoot(awsRootPEM, awsRootSHA256)
}

func pinnedRoot(pemText, wantSHA256 string) (*x509.Certificate, error) {
	block, rest := pem.Decode([]byte(pemText))
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: embedded root is not a single PEM certificate", ErrUntrustedChain)
	}
	sum := sha256.Sum256(block.Bytes)
	if got := hex.EncodeToString(sum[:]); got != wantSHA256 {
		return nil, fmt.Errorf("%w: embedded root has SHA-256 %s, want %s", ErrUntrustedChain, got, wantSHA256)
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: failed to parse embedded root: %w", ErrUntrustedChain, err)
	}
	return root, nil
}

func trustedRoots(roots []*x509.Certificate) ([]*x509.Certificate, error) {
	if len(roots) == 0 {
		root, err := AWSRoot()
		if err != nil {
			return nil, err
		}
		return []*x509.Certificate{root}, nil
	}
	for i, r := range roots {
		if r == nil {
			return nil, fmt.Errorf("%w: Options.Roots[%d] is nil", ErrUntrustedChain, i)
		}
	}
	return roots, nil
}

// verifyChain checks that cabundle starts with a pinned root and that the
// leaf chains to it through the rest of the bundle at time now. It returns
// the leaf, which is then known to be a P-384 signing key.
func verifyChain(p *payload, roots []*x509.Certificate, now time.Time) (*x509.Certificate, error) {
	root := findRoot(roots, p.CABundle[0])
	if root == nil {
		return nil, fmt.Errorf("%w: cabundle[0] is not a trusted root", ErrUntrustedChain)
	}
	leaf, err := x509.ParseCertificate(p.Certificate)
	if err != nil {
		return nil, &FieldError{Field: "certificate", Reason: err.Error()}
	}
	intermediates := x509.NewCertPool()
	for i, der := range p.CABundle[1:] {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, &FieldError{Field: "cabundle", Reason: fmt.Sprintf("entry %d: %v", i+1, err)}
		}
		intermediates.AddCert(cert)
	}
	rootPool := x509.NewCertPool()
	rootPool.AddCert(root)
	_, err = leaf.Verify(x509.VerifyOptions{
		Roots:         rootPool,
		Intermediates: intermediates,
		CurrentTime:   now,
		// The leaf has no EKU; attestation is not a TLS purpose.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, chainError(err)
	}
	if err := checkLeaf(leaf); err != nil {
		return nil, err
	}
	return leaf, nil
}

// findRoot requires cabundle[0] to be byte-identical to a trusted root, as
// the AWS specification asks, rather than merely issued by one.
func findRoot(roots []*x509.Certificate, der []byte) *x509.Certificate {
	for _, r := range roots {
		if bytes.Equal(r.Raw, der) {
			return r
		}
	}
	return nil
}

func chainError(err error) error {
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) && invalid.Reason == x509.Expired {
		return fmt.Errorf("%w: %w", ErrExpired, err)
	}
	return fmt.Errorf("%w: %w", ErrUntrustedChain, err)
}

// checkLeaf accepts only what ES384 can be verified with. It never assumes
// a key type, so that a crafted P-521 or RSA leaf is an error, not a panic.
func checkLeaf(leaf *x509.Certificate) error {
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P384() {
		return fmt.Errorf("%w: leaf key is %s, want ECDSA P-384", ErrUnsupportedAlgorithm, describeKey(leaf.PublicKey))
	}
	if leaf.SignatureAlgorithm != x509.ECDSAWithSHA384 {
		return fmt.Errorf("%w: leaf is signed with %v, want ECDSA-SHA384", ErrUnsupportedAlgorithm, leaf.SignatureAlgorithm)
	}
	if leaf.IsCA || leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return fmt.Errorf("%w: leaf must be a non-CA certificate with the digitalSignature key usage", ErrUntrustedChain)
	}
	return nil
}

func describeKey(pub any) string {
	if k, ok := pub.(*ecdsa.PublicKey); ok && k.Curve != nil {
		return "ECDSA " + k.Curve.Params().Name
	}
	return fmt.Sprintf("%T", pub)
}
