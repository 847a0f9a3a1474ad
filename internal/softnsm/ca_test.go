package softnsm_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/attestation"
	"github.com/tmkms-nitro/tmkms-nitro/internal/localca"
	"github.com/tmkms-nitro/tmkms-nitro/internal/nsm"
	"github.com/tmkms-nitro/tmkms-nitro/internal/softnsm"
)

func newCA(t *testing.T) *softnsm.CA {
	t.Helper()
	ca, err := softnsm.NewCA(t0)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// TestCAPersistence is local mode's flow: the enclave side saves its CA,
// a separate verifier process loads only the root and accepts documents
// from a software NSM built on the reloaded CA.
func TestCAPersistence(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca := newCA(t)
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]os.FileMode{"": 0o700, softnsm.CAKeyFile: 0o600, softnsm.CARootFile: 0o644} {
		info, err := os.Stat(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got&^want != 0 {
			t.Errorf("%s has mode %v, want at most %v", filepath.Join(dir, file), got, want)
		}
	}
	loaded, err := softnsm.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Root().Equal(ca.Root()) {
		t.Error("loaded root differs")
	}
	soft, err := softnsm.NewSoftware(&softnsm.SoftwareConfig{CA: loaded})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := soft.Attest(t.Context(), nsm.AttestRequest{})
	if err != nil {
		t.Fatal(err)
	}
	root, err := softnsm.LoadCARoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attestation.Verify(doc, attestation.Options{Roots: []*x509.Certificate{root}}); err != nil {
		t.Fatal(err)
	}
	if err := newCA(t).Save(dir); err == nil {
		t.Error("Save overwrote an existing CA")
	}
	if again, err := softnsm.LoadCA(dir); err != nil || !again.Root().Equal(ca.Root()) {
		t.Errorf("CA changed after a refused Save: %v", err)
	}
}

func TestLoadCARefuses(t *testing.T) {
	saved := func(t *testing.T) string {
		dir := t.TempDir()
		if err := newCA(t).Save(dir); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	tests := []struct {
		name  string
		setup func(t *testing.T) string
		want  string
	}{
		{"missing directory", func(t *testing.T) string { return filepath.Join(t.TempDir(), "none") }, "failed to read root certificate"},
		{"key readable by others", func(t *testing.T) string {
			dir := saved(t)
			if err := os.Chmod(filepath.Join(dir, softnsm.CAKeyFile), 0o644); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "chmod 600"},
		{"key of another CA", func(t *testing.T) string {
			dir, other := saved(t), saved(t)
			copyFile(t, filepath.Join(other, softnsm.CAKeyFile), filepath.Join(dir, softnsm.CAKeyFile), 0o600)
			return dir
		}, "does not match"},
		{"missing key", func(t *testing.T) string {
			dir := saved(t)
			if err := os.Remove(filepath.Join(dir, softnsm.CAKeyFile)); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "failed to read key"},
		{"root not PEM", func(t *testing.T) string {
			dir := saved(t)
			writeFile(t, filepath.Join(dir, softnsm.CARootFile), []byte("junk"), 0o644)
			return dir
		}, "no PEM CERTIFICATE block"},
		{"root not a CA", func(t *testing.T) string {
			dir := saved(t)
			soft, err := softnsm.NewSoftware(nil)
			if err != nil {
				t.Fatal(err)
			}
			leaf := leafOf(t, soft)
			writeFile(t, filepath.Join(dir, softnsm.CARootFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}), 0o644)
			return dir
		}, "not a self-signed CA"},
		{"key not PEM", func(t *testing.T) string {
			dir := saved(t)
			writeFile(t, filepath.Join(dir, softnsm.CAKeyFile), []byte("junk"), 0o600)
			return dir
		}, "no PEM PRIVATE KEY block"},
		{"P-256 CA", func(t *testing.T) string {
			dir := t.TempDir()
			root, err := localca.New(elliptic.P256(), localca.Spec{Kind: localca.CA, Lifetime: time.Hour}, t0)
			if err != nil {
				t.Fatal(err)
			}
			if err := root.Save(filepath.Join(dir, softnsm.CARootFile), filepath.Join(dir, softnsm.CAKeyFile)); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "not an ECDSA P-384 key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca, err := softnsm.LoadCA(tt.setup(t))
			if ca != nil || err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "nsm: ") {
				t.Fatalf("LoadCA = %v, %v; want an error containing %q", ca, err, tt.want)
			}
		})
	}
}

func TestSecretsAreNotPrinted(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, softnsm.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(keyPEM)
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	scalar, err := parsed.(*ecdsa.PrivateKey).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{hex.EncodeToString(scalar), new(big.Int).SetBytes(scalar).String(), "PRIVATE"}
	soft, err := softnsm.NewSoftware(&softnsm.SoftwareConfig{CA: ca})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{ca, *ca, soft} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			out := fmt.Sprintf(verb, v)
			for _, secret := range secrets {
				if strings.Contains(strings.ToLower(out), strings.ToLower(secret)) {
					t.Errorf("%s of %T prints the key: %s", verb, v, out)
				}
			}
		}
	}
}

func leafOf(t *testing.T, soft *softnsm.Software) *x509.Certificate {
	t.Helper()
	return emptyDocument(t, soft).Certificate
}

// emptyDocument is soft's document for a request without fields, verified
// against soft's own root.
func emptyDocument(t *testing.T, soft *softnsm.Software) *attestation.Document {
	t.Helper()
	raw, err := soft.Attest(t.Context(), nsm.AttestRequest{})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := attestation.Verify(raw, attestation.Options{Roots: []*x509.Certificate{soft.Root()}})
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func writeFile(t *testing.T, path string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string, perm os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, data, perm)
}
