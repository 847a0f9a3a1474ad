package softnsm

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// CA is the software NSM's root of trust: a self-signed ECDSA P-384 root
// whose key issues short-lived intermediates, which issue a leaf per
// document, as AWS's root → regional → zonal → instance → leaf chain does.
// It is for local mode and tests only; nothing about it is AWS's.
type CA struct {
	root *x509.Certificate
	key  *ecdsa.PrivateKey
}

// Files written by Save and read by LoadCA and LoadCARoot.
const (
	CARootFile = "root.pem"     // the root certificate, for verifiers
	CAKeyFile  = "root-key.pem" // PKCS#8 private key, mode 0600
)

// Lifetimes modelled on the real chain (root 30 years, regional 20 days,
// leaf about 3 hours). skew lets a verifier whose clock is slightly behind
// accept a certificate issued just now.
const (
	rootLifetime         = 30 * 365 * 24 * time.Hour
	intermediateLifetime = 20 * 24 * time.Hour
	leafLifetime         = 3 * time.Hour
	skew                 = time.Minute
)

// NewCA creates a CA whose root is valid from now (minus a little skew) for
// 30 years.
func NewCA(now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("nsm: failed to generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "software NSM root", Organization: []string{"tmkms-nitro local mode (not AWS)"}},
		NotBefore:             now.Add(-skew),
		NotAfter:              now.Add(rootLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	root, err := issue(tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return &CA{root: root, key: key}, nil
}

// Root returns the root certificate, which verifiers must be given
// explicitly to accept this CA's documents.
func (c *CA) Root() *x509.Certificate { return c.root }

// String and GoString keep the private key out of logs.
func (c CA) String() string {
	if c.root == nil {
		return "softnsm.CA{}"
	}
	return fmt.Sprintf("softnsm.CA{root: %q}", c.root.Subject.CommonName)
}

func (c CA) GoString() string { return c.String() }

// Save writes the root certificate and private key into dir, creating it
// with mode 0700 if needed. It refuses to overwrite an existing CA, which
// would silently change the root verifiers trust.
func (c *CA) Save(dir string) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		return fmt.Errorf("nsm: failed to encode CA key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("nsm: failed to create CA directory: %w", err)
	}
	keyPath := filepath.Join(dir, CAKeyFile)
	if err := writeNew(keyPath, pemBlock("PRIVATE KEY", keyDER), 0o600); err != nil {
		return err
	}
	if err := writeNew(filepath.Join(dir, CARootFile), pemBlock("CERTIFICATE", c.root.Raw), 0o644); err != nil {
		// A key without its root is useless and must not linger.
		return errors.Join(err, os.Remove(keyPath))
	}
	return nil
}

// LoadCA reads a CA written by Save. The key file must not be accessible
// by group or others.
func LoadCA(dir string) (*CA, error) {
	root, err := LoadCARoot(dir)
	if err != nil {
		return nil, err
	}
	key, err := readKey(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, err
	}
	if !key.PublicKey.Equal(root.PublicKey) {
		return nil, fmt.Errorf("nsm: %s does not match %s in %s", CAKeyFile, CARootFile, dir)
	}
	return &CA{root: root, key: key}, nil
}

// LoadCARoot reads only the root certificate from a directory written by
// Save: what a verifier (the local KMS) needs to trust the software NSM.
func LoadCARoot(dir string) (*x509.Certificate, error) {
	path := filepath.Join(dir, CARootFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("nsm: failed to read CA root: %w", err)
	}
	der, err := pemBody(data, "CERTIFICATE")
	if err != nil {
		return nil, fmt.Errorf("nsm: %s: %w", path, err)
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("nsm: failed to parse %s: %w", path, err)
	}
	if !root.IsCA || root.CheckSignatureFrom(root) != nil {
		return nil, fmt.Errorf("nsm: %s is not a self-signed CA certificate", path)
	}
	return root, nil
}

func readKey(path string) (*ecdsa.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("nsm: failed to read CA key: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("nsm: failed to read CA key: %w", err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("nsm: %s has mode %v, want 0600 (chmod 600 it)", path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<16))
	if err != nil {
		return nil, fmt.Errorf("nsm: failed to read CA key: %w", err)
	}
	der, err := pemBody(data, "PRIVATE KEY")
	if err != nil {
		return nil, fmt.Errorf("nsm: %s: %w", path, err)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("nsm: failed to parse %s: %w", path, err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P384() {
		return nil, fmt.Errorf("nsm: %s is not an ECDSA P-384 key", path)
	}
	return key, nil
}

// issueIntermediate creates a CA that may issue leaves only (path length 0).
func (c *CA) issueIntermediate(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("nsm: failed to generate intermediate key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "software NSM intermediate", Organization: []string{"tmkms-nitro local mode (not AWS)"}},
		NotBefore:             now.Add(-skew),
		NotAfter:              minTime(now.Add(intermediateLifetime), c.root.NotAfter),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	cert, err := issue(tmpl, c.root, &key.PublicKey, c.key)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// issueLeaf creates the per-document signing certificate: digitalSignature,
// no EKU, like the NSM's.
func issueLeaf(parent *x509.Certificate, parentKey *ecdsa.PrivateKey, moduleID string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("nsm: failed to generate leaf key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: moduleID, Organization: []string{"tmkms-nitro local mode (not AWS)"}},
		NotBefore:             now.Add(-skew),
		NotAfter:              minTime(now.Add(leafLifetime), parent.NotAfter),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
	}
	cert, err := issue(tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func issue(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, parentKey *ecdsa.PrivateKey) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("nsm: failed to generate serial number: %w", err)
	}
	tmpl.SerialNumber = serial
	tmpl.SignatureAlgorithm = x509.ECDSAWithSHA384
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		return nil, fmt.Errorf("nsm: failed to issue %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("nsm: internal error: failed to parse issued certificate: %w", err)
	}
	return cert, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pemBody(data []byte, typ string) ([]byte, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != typ {
		return nil, fmt.Errorf("no PEM %s block", typ)
	}
	return block.Bytes, nil
}

// writeNew creates path with perm and fails if it exists.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("nsm: failed to create %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("nsm: failed to write %s: %w", path, err)
	}
	return nil
}
