package localca_test

import (
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/localca"
)

var t0 = time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)

func name(cn string) pkix.Name { return pkix.Name{CommonName: cn} }

func mustNew(t *testing.T, curve elliptic.Curve, kind localca.Kind, life time.Duration) *localca.Cert {
	t.Helper()
	ca, err := localca.New(curve, localca.Spec{Subject: name("root"), Kind: kind, Lifetime: life}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustIssue(t *testing.T, ca *localca.Cert, spec localca.Spec) *localca.Cert {
	t.Helper()
	c, err := ca.Issue(spec, t0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestChainVerifies: a root → intermediate → leaf chain passes crypto/x509's
// verification for the leaf's names and usages, and only for those.
func TestChainVerifies(t *testing.T) {
	root := mustNew(t, elliptic.P384(), localca.CA, 30*24*time.Hour)
	inter := mustIssue(t, root, localca.Spec{Subject: name("inter"), Kind: localca.LeafCA, Lifetime: 20 * 24 * time.Hour})
	leaf := mustIssue(t, inter, localca.Spec{Subject: name("leaf"), Names: []string{"db.internal", "10.0.0.7", "::1"},
		Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, Lifetime: 3 * time.Hour})
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root.Certificate)
	inters.AddCert(inter.Certificate)
	tests := []struct {
		dns   string
		at    time.Time
		usage x509.ExtKeyUsage
		ok    bool
	}{
		{"db.internal", t0, x509.ExtKeyUsageServerAuth, true},
		{"10.0.0.7", t0, x509.ExtKeyUsageServerAuth, true},
		{"::1", t0.Add(-59 * time.Minute), x509.ExtKeyUsageServerAuth, true},
		{"other.internal", t0, x509.ExtKeyUsageServerAuth, false},
		{"db.internal", t0, x509.ExtKeyUsageClientAuth, false},
		{"db.internal", t0.Add(3*time.Hour + time.Second), x509.ExtKeyUsageServerAuth, false},
		{"db.internal", t0.Add(-61 * time.Minute), x509.ExtKeyUsageServerAuth, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s at %v for %v", tt.dns, tt.at.Sub(t0), tt.usage), func(t *testing.T) {
			_, err := leaf.Certificate.Verify(x509.VerifyOptions{DNSName: tt.dns, Roots: roots, Intermediates: inters,
				CurrentTime: tt.at, KeyUsages: []x509.ExtKeyUsage{tt.usage}})
			if (err == nil) != tt.ok {
				t.Fatalf("Verify = %v, want ok=%v", err, tt.ok)
			}
		})
	}
	for _, c := range []*localca.Cert{inter, leaf} {
		if c.Key.Curve != elliptic.P384() || c.Certificate.SignatureAlgorithm != x509.ECDSAWithSHA384 {
			t.Errorf("%v: key on %s signed with %v, want the root's P-384 and SHA-384", c, c.Key.Curve.Params().Name, c.Certificate.SignatureAlgorithm)
		}
	}
	if leaf.Certificate.IsCA || leaf.Certificate.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("leaf: IsCA %v, key usage %v", leaf.Certificate.IsCA, leaf.Certificate.KeyUsage)
	}
}

func TestLifetimeEndsWithIssuer(t *testing.T) {
	root := mustNew(t, elliptic.P256(), localca.LeafCA, time.Hour)
	leaf := mustIssue(t, root, localca.Spec{Subject: name("leaf"), Lifetime: 24 * time.Hour})
	if !leaf.Certificate.NotAfter.Equal(root.Certificate.NotAfter) {
		t.Fatalf("leaf expires %v, its issuer %v", leaf.Certificate.NotAfter, root.Certificate.NotAfter)
	}
}

func TestIssueRefuses(t *testing.T) {
	leafCA := mustNew(t, elliptic.P256(), localca.LeafCA, time.Hour)
	leaf := mustIssue(t, leafCA, localca.Spec{Subject: name("leaf"), Lifetime: time.Hour})
	tests := []struct {
		name   string
		issuer *localca.Cert
		kind   localca.Kind
		want   string
	}{
		{"leaf from a leaf", leaf, localca.Leaf, `"leaf" is not a CA`},
		{"intermediate from a CA that issues leaves only", leafCA, localca.LeafCA, "issues leaves only"},
		{"CA from a CA that issues leaves only", leafCA, localca.CA, "issues leaves only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.issuer.Issue(localca.Spec{Subject: name("x"), Kind: tt.kind, Lifetime: time.Hour}, t0)
			if c != nil || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Issue = %v, %v; want an error containing %q", c, err, tt.want)
			}
		})
	}
	if c, err := localca.New(elliptic.P256(), localca.Spec{Subject: name("x"), Lifetime: time.Hour}, t0); c != nil || err == nil {
		t.Fatalf("New made a root that is not a CA: %v, %v", c, err)
	}
}

func TestTLS(t *testing.T) {
	root := mustNew(t, elliptic.P256(), localca.LeafCA, time.Hour)
	server := mustIssue(t, root, localca.Spec{Subject: name("server"), Names: []string{"localhost"},
		Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, Lifetime: time.Hour})
	pool := x509.NewCertPool()
	pool.AddCert(root.Certificate)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	done := make(chan error, 1)
	go func() { done <- tls.Server(a, &tls.Config{Certificates: []tls.Certificate{server.TLS()}}).Handshake() }()
	client := tls.Client(b, &tls.Config{RootCAs: pool, ServerName: "localhost", Time: func() time.Time { return t0 }})
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func paths(dir string) (cert, key string) {
	return filepath.Join(dir, "root.pem"), filepath.Join(dir, "root-key.pem")
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := paths(dir)
	ca := mustNew(t, elliptic.P384(), localca.CA, time.Hour)
	if err := ca.Save(certPath, keyPath); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{certPath, keyPath} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, %v; want mode 0600", p, fi, err)
		}
	}
	loaded, err := localca.Load(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Certificate.Equal(ca.Certificate) || !loaded.Key.Equal(ca.Key) {
		t.Fatal("Load returned another CA than Save wrote")
	}
	if data, _ := os.ReadFile(certPath); string(data) != string(ca.CertPEM()) {
		t.Fatalf("%s is not CertPEM: %q", certPath, data)
	}
	other := mustNew(t, elliptic.P384(), localca.CA, time.Hour)
	otherDir := t.TempDir()
	_, otherKey := paths(otherDir)
	tests := []struct {
		name       string
		cert, key  string
		keep, gone string // a file that must survive, one that must not appear
	}{
		{"both exist", certPath, keyPath, keyPath, ""},
		{"key exists", filepath.Join(otherDir, "new.pem"), keyPath, keyPath, filepath.Join(otherDir, "new.pem")},
		{"certificate exists", certPath, otherKey, certPath, otherKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := other.Save(tt.cert, tt.key); err == nil || !strings.Contains(err.Error(), "refusing to replace") {
				t.Fatalf("Save over an existing file: %v", err)
			}
			if tt.gone != "" {
				if _, err := os.Stat(tt.gone); err == nil {
					t.Errorf("a refused Save wrote %s", tt.gone)
				}
			}
			if again, err := localca.Load(certPath, keyPath); err != nil || !again.Certificate.Equal(ca.Certificate) {
				t.Fatalf("CA changed after a refused Save: %v", err)
			}
		})
	}
}

func TestLoadRefuses(t *testing.T) {
	saved := func(t *testing.T) string {
		dir := t.TempDir()
		cert, key := paths(dir)
		if err := mustNew(t, elliptic.P256(), localca.LeafCA, time.Hour).Save(cert, key); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	write := func(t *testing.T, path string, data []byte, perm os.FileMode) {
		t.Helper()
		must(t, os.WriteFile(path, data, perm))
	}
	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	tests := []struct {
		name  string
		spoil func(t *testing.T, cert, key string)
		want  string
	}{
		{"missing certificate", func(t *testing.T, cert, _ string) { must(t, os.Remove(cert)) }, "failed to read root certificate"},
		{"missing key", func(t *testing.T, _, key string) { must(t, os.Remove(key)) }, "failed to read key"},
		{"key readable by group", func(t *testing.T, _, key string) { must(t, os.Chmod(key, 0o640)) }, "chmod 600"},
		{"key of another CA", func(t *testing.T, _, key string) {
			_, otherKey := paths(saved(t))
			data, err := os.ReadFile(otherKey)
			must(t, err)
			write(t, key, data, 0o600)
		}, "does not match"},
		{"certificate not PEM", func(t *testing.T, cert, _ string) { write(t, cert, []byte("junk"), 0o600) }, "no PEM CERTIFICATE block"},
		{"certificate not DER", func(t *testing.T, cert, _ string) { write(t, cert, pemOf("CERTIFICATE", []byte{0x30, 0}), 0o600) }, "failed to parse"},
		{"certificate not a CA", func(t *testing.T, cert, _ string) {
			root := mustNew(t, elliptic.P256(), localca.LeafCA, time.Hour)
			write(t, cert, mustIssue(t, root, localca.Spec{Subject: name("leaf"), Lifetime: time.Hour}).CertPEM(), 0o600)
		}, "not a self-signed CA"},
		{"certificate issued by another CA", func(t *testing.T, cert, _ string) {
			root := mustNew(t, elliptic.P256(), localca.CA, time.Hour)
			write(t, cert, mustIssue(t, root, localca.Spec{Subject: name("inter"), Kind: localca.LeafCA, Lifetime: time.Hour}).CertPEM(), 0o600)
		}, "not a self-signed CA"},
		{"key not PEM", func(t *testing.T, _, key string) { write(t, key, []byte("junk"), 0o600) }, "no PEM PRIVATE KEY block"},
		{"key not PKCS#8", func(t *testing.T, _, key string) { write(t, key, pemOf("PRIVATE KEY", []byte{0x30, 0}), 0o600) }, "failed to parse"},
		{"key not ECDSA", func(t *testing.T, _, key string) {
			_, k, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			der, err := x509.MarshalPKCS8PrivateKey(k)
			if err != nil {
				t.Fatal(err)
			}
			write(t, key, pemOf("PRIVATE KEY", der), 0o600)
		}, "not an ECDSA key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, key := paths(saved(t))
			tt.spoil(t, cert, key)
			ca, err := localca.Load(cert, key)
			if ca != nil || err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "localca: ") {
				t.Fatalf("Load = %v, %v; want an error containing %q", ca, err, tt.want)
			}
		})
	}
}

func TestKeyIsNotPrinted(t *testing.T) {
	ca := mustNew(t, elliptic.P256(), localca.LeafCA, time.Hour)
	scalar, err := ca.Key.Bytes()
	must(t, err)
	secrets := []string{hex.EncodeToString(scalar), new(big.Int).SetBytes(scalar).String()}
	for _, v := range []any{ca, *ca} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, secrets[0]) || strings.Contains(out, secrets[1]) || !strings.Contains(out, "root") {
				t.Errorf("%s of %T: %s", verb, v, out)
			}
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
