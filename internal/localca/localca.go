// Package localca is the certificate authority of local mode and tests:
// it makes self-signed ECDSA roots, issues intermediates and leaves from
// them, and keeps a root as a PEM certificate and a PKCS#8 key file.
// Nothing it issues is trusted anywhere unless its root is handed over
// explicitly. It is linked into the helper and the tests, never into the
// enclave program.
package localca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/atomicfile"
)

// Kind is what a certificate may do.
type Kind int

const (
	// Leaf signs (TLS handshakes, documents) and issues nothing.
	Leaf Kind = iota
	// LeafCA is a CA that issues leaves only (path length 0).
	LeafCA
	// CA is a CA that may also issue CAs.
	CA
)

// Spec describes a certificate to make.
type Spec struct {
	Subject pkix.Name
	Kind    Kind
	// Names are the DNS names and IP addresses the certificate is for.
	Names []string
	// Usages are the extended key usages; none leaves the extension out.
	Usages []x509.ExtKeyUsage
	// Lifetime runs from the time of issue; it is cut short where the
	// issuer expires first.
	Lifetime time.Duration
}

// backdate lets a peer whose clock is somewhat behind accept a
// certificate issued just now.
const backdate = time.Hour

// Cert is a certificate with its private key. A Cert that is a CA issues
// others, on its own curve.
type Cert struct {
	Certificate *x509.Certificate
	Key         *ecdsa.PrivateKey
}

// New makes a self-signed root with a fresh key on curve; spec.Kind must
// be LeafCA or CA.
func New(curve elliptic.Curve, spec Spec, now time.Time) (*Cert, error) {
	if spec.Kind == Leaf {
		return nil, fmt.Errorf("localca: root %q must be a CA", spec.Subject.CommonName)
	}
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("localca: failed to generate key: %w", err)
	}
	tmpl := template(spec, now)
	root := &Cert{Certificate: tmpl, Key: key}
	cert, err := root.Sign(tmpl, &key.PublicKey)
	if err != nil {
		return nil, err
	}
	return &Cert{Certificate: cert, Key: key}, nil
}

// Issue makes a certificate for spec with a fresh key on c's curve.
func (c *Cert) Issue(spec Spec, now time.Time) (*Cert, error) {
	switch {
	case !c.Certificate.IsCA:
		return nil, fmt.Errorf("localca: %q is not a CA", c.Certificate.Subject.CommonName)
	case spec.Kind != Leaf && c.Certificate.MaxPathLenZero:
		return nil, fmt.Errorf("localca: %q issues leaves only", c.Certificate.Subject.CommonName)
	}
	key, err := ecdsa.GenerateKey(c.Key.Curve, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("localca: failed to generate key: %w", err)
	}
	tmpl := template(spec, now)
	if tmpl.NotAfter.After(c.Certificate.NotAfter) {
		tmpl.NotAfter = c.Certificate.NotAfter
	}
	cert, err := c.Sign(tmpl, &key.PublicKey)
	if err != nil {
		return nil, err
	}
	return &Cert{Certificate: cert, Key: key}, nil
}

func template(spec Spec, now time.Time) *x509.Certificate {
	tmpl := &x509.Certificate{
		Subject:               spec.Subject,
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(spec.Lifetime),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           spec.Usages,
	}
	if spec.Kind != Leaf {
		tmpl.IsCA = true
		tmpl.MaxPathLenZero = spec.Kind == LeafCA
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	for _, n := range spec.Names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	return tmpl
}

// Sign issues tmpl as given, adding only a random serial number, for pub:
// the way to certificates a Spec cannot describe, such as the malformed
// ones a verifier's tests need.
func (c *Cert) Sign(tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("localca: failed to generate serial number: %w", err)
	}
	tmpl.SerialNumber = serial.Add(serial, big.NewInt(1)) // serials must be positive
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.Certificate, pub, c.Key)
	if err != nil {
		return nil, fmt.Errorf("localca: failed to issue %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("localca: failed to parse issued %q: %w", tmpl.Subject.CommonName, err)
	}
	return cert, nil
}

// CertPEM returns the certificate in PEM.
func (c *Cert) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate.Raw})
}

// TLS returns the certificate and key for a crypto/tls config.
func (c *Cert) TLS() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.Certificate.Raw}, PrivateKey: c.Key, Leaf: c.Certificate}
}

// String and GoString keep the private key out of logs.
func (c Cert) String() string {
	if c.Certificate == nil {
		return "localca.Cert{}"
	}
	return fmt.Sprintf("localca.Cert{subject: %q}", c.Certificate.Subject.CommonName)
}

func (c Cert) GoString() string { return c.String() }

// Save writes the key (PKCS#8) to keyPath, then the certificate to
// certPath, both with mode 0600: the certificate is public, but it lives
// beside the key, in directories only their owner may read. It refuses to replace either file: a new root
// would silently change what clients trust. Writing the key first means a
// crash in between leaves a key without its certificate, which Load
// refuses, rather than a certificate nobody can issue from.
func (c *Cert) Save(certPath, keyPath string) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		return fmt.Errorf("localca: failed to encode key: %w", err)
	}
	for _, path := range []string{keyPath, certPath} {
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("localca: %s already exists: refusing to replace it", path)
		}
	}
	if err := atomicfile.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return fmt.Errorf("localca: %w", err)
	}
	if err := atomicfile.WriteFile(certPath, c.CertPEM(), 0o600); err != nil {
		// Nothing trusts a certificate that was never written: the key
		// can go, so that the next attempt starts clean.
		return errors.Join(fmt.Errorf("localca: %w", err), os.Remove(keyPath))
	}
	return nil
}

// Load reads a CA written by Save. The key file must not be accessible by
// group or others.
func Load(certPath, keyPath string) (*Cert, error) {
	cert, err := LoadRoot(certPath)
	if err != nil {
		return nil, err
	}
	key, err := readKey(keyPath)
	if err != nil {
		return nil, err
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("localca: %s does not match %s", keyPath, certPath)
	}
	return &Cert{Certificate: cert, Key: key}, nil
}

// LoadRoot reads only the certificate written by Save, which must be a
// self-signed CA: what a verifier needs to trust the CA.
func LoadRoot(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("localca: failed to read root certificate: %w", err)
	}
	der, err := pemBody(path, data, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("localca: failed to parse %s: %w", path, err)
	}
	if !cert.IsCA || cert.CheckSignatureFrom(cert) != nil {
		return nil, fmt.Errorf("localca: %s is not a self-signed CA certificate", path)
	}
	return cert, nil
}

func readKey(path string) (*ecdsa.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("localca: failed to read key: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("localca: failed to read key: %w", err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("localca: %s has mode %v, want 0600 (chmod 600 it)", path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<16))
	if err != nil {
		return nil, fmt.Errorf("localca: failed to read key: %w", err)
	}
	der, err := pemBody(path, data, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("localca: failed to parse %s: %w", path, err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("localca: %s is not an ECDSA key", path)
	}
	return key, nil
}

func pemBody(path string, data []byte, typ string) ([]byte, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != typ {
		return nil, fmt.Errorf("localca: %s: no PEM %s block", path, typ)
	}
	return block.Bytes, nil
}
