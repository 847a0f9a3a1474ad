package softnsm

import (
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/localca"
)

// CA is the software NSM's root of trust: a self-signed ECDSA P-384 root
// whose key issues short-lived intermediates, which issue a leaf per
// document, as AWS's root → regional → zonal → instance → leaf chain does.
// It is for local mode and tests only; nothing about it is AWS's.
type CA struct {
	root *localca.Cert
}

// Files written by Save and read by LoadCA and LoadCARoot.
const (
	CARootFile = "root.pem"     // the root certificate, for verifiers
	CAKeyFile  = "root-key.pem" // PKCS#8 private key, mode 0600
)

// Lifetimes modelled on the real chain (root 30 years, regional 20 days,
// leaf about 3 hours).
const (
	rootLifetime         = 30 * 365 * 24 * time.Hour
	intermediateLifetime = 20 * 24 * time.Hour
	leafLifetime         = 3 * time.Hour
)

var organization = []string{"tmkms-nitro local mode (not AWS)"}

// NewCA creates a CA whose root is valid from now for 30 years.
func NewCA(now time.Time) (*CA, error) {
	root, err := localca.New(elliptic.P384(), localca.Spec{
		Subject:  pkix.Name{CommonName: "software NSM root", Organization: organization},
		Kind:     localca.CA,
		Lifetime: rootLifetime,
	}, now)
	if err != nil {
		return nil, fmt.Errorf("nsm: %w", err)
	}
	return &CA{root: root}, nil
}

// Root returns the root certificate, which verifiers must be given
// explicitly to accept this CA's documents.
func (c *CA) Root() *x509.Certificate { return c.root.Certificate }

// String and GoString keep the private key out of logs.
func (c CA) String() string {
	if c.root == nil {
		return "softnsm.CA{}"
	}
	return fmt.Sprintf("softnsm.CA{root: %q}", c.root.Certificate.Subject.CommonName)
}

func (c CA) GoString() string { return c.String() }

// Save writes the root certificate and private key into dir, creating it
// with mode 0700 if needed. It refuses to overwrite an existing CA, which
// would silently change the root verifiers trust.
func (c *CA) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("nsm: failed to create CA directory: %w", err)
	}
	if err := c.root.Save(filepath.Join(dir, CARootFile), filepath.Join(dir, CAKeyFile)); err != nil {
		return fmt.Errorf("nsm: %w", err)
	}
	return nil
}

// LoadCA reads a CA written by Save. The key file must not be accessible
// by group or others.
func LoadCA(dir string) (*CA, error) {
	root, err := localca.Load(filepath.Join(dir, CARootFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("nsm: %w", err)
	}
	// Intermediates and leaves take the root's curve: another would give
	// documents a shape the real NSM's never have.
	if root.Key.Curve != elliptic.P384() {
		return nil, fmt.Errorf("nsm: %s is not an ECDSA P-384 key", filepath.Join(dir, CAKeyFile))
	}
	return &CA{root: root}, nil
}

// LoadCARoot reads only the root certificate from a directory written by
// Save: what a verifier (the local KMS) needs to trust the software NSM.
func LoadCARoot(dir string) (*x509.Certificate, error) {
	root, err := localca.LoadRoot(filepath.Join(dir, CARootFile))
	if err != nil {
		return nil, fmt.Errorf("nsm: %w", err)
	}
	return root, nil
}

// issueIntermediate creates a CA that may issue leaves only.
func (c *CA) issueIntermediate(now time.Time) (*localca.Cert, error) {
	inter, err := c.root.Issue(localca.Spec{
		Subject:  pkix.Name{CommonName: "software NSM intermediate", Organization: organization},
		Kind:     localca.LeafCA,
		Lifetime: intermediateLifetime,
	}, now)
	if err != nil {
		return nil, fmt.Errorf("nsm: %w", err)
	}
	return inter, nil
}

// issueLeaf creates the per-document signing certificate: digitalSignature,
// no EKU, like the NSM's.
func issueLeaf(inter *localca.Cert, moduleID string, now time.Time) (*localca.Cert, error) {
	leaf, err := inter.Issue(localca.Spec{
		Subject:  pkix.Name{CommonName: moduleID, Organization: organization},
		Lifetime: leafLifetime,
	}, now)
	if err != nil {
		return nil, fmt.Errorf("nsm: %w", err)
	}
	return leaf, nil
}
