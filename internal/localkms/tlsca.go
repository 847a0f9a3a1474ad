package localkms

import (
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/localca"
)

// loadOrCreateCA returns the server's own TLS root. It persists in the data
// directory so that clients configured with RootFile keep working across
// restarts; the server certificate is issued afresh at every start, for the
// current names.
func loadOrCreateCA(dir string, now time.Time) (*localca.Cert, error) {
	certPath, keyPath := filepath.Join(dir, RootFile), filepath.Join(dir, rootKeyFile)
	_, err := os.Stat(certPath)
	switch {
	case err == nil:
		ca, err := localca.Load(certPath, keyPath)
		if err != nil {
			return nil, fmt.Errorf("localkms: TLS root: %w", err)
		}
		return ca, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("localkms: TLS root: %w", err)
	}
	ca, err := localca.New(elliptic.P256(), localca.Spec{
		Subject:  pkix.Name{CommonName: "tmkms-nitro local KMS root"},
		Kind:     localca.LeafCA,
		Lifetime: 20 * 365 * 24 * time.Hour,
	}, now)
	if err != nil {
		return nil, fmt.Errorf("localkms: TLS root: %w", err)
	}
	// Save refuses a key left without its certificate rather than
	// silently re-rooting.
	if err := ca.Save(certPath, keyPath); err != nil {
		return nil, fmt.Errorf("localkms: TLS root: %w", err)
	}
	return ca, nil
}

// issueServerCert returns a server certificate for localhost, the loopback
// addresses and names (DNS names or IP addresses).
func issueServerCert(ca *localca.Cert, names []string, now time.Time) (tls.Certificate, error) {
	leaf, err := ca.Issue(localca.Spec{
		Subject:  pkix.Name{CommonName: "tmkms-nitro local KMS"},
		Names:    append([]string{"localhost", "127.0.0.1", "::1"}, names...),
		Usages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		Lifetime: 365 * 24 * time.Hour,
	}, now)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("localkms: TLS certificate: %w", err)
	}
	return leaf.TLS(), nil
}
