package localkms_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/tmkms-nitro/tmkms-nitro/internal/cms"
	"github.com/tmkms-nitro/tmkms-nitro/internal/kmspolicy"
	"github.com/tmkms-nitro/tmkms-nitro/internal/localkms"
	"github.com/tmkms-nitro/tmkms-nitro/internal/nsm"
	"github.com/tmkms-nitro/tmkms-nitro/internal/softnsm"
)

func TestKeyPolicyLifecycle(t *testing.T) {
	dir := t.TempDir()
	s := start(t, localkms.Config{Dir: dir})
	arn := s.createKey(t, "")
	c := s.sdk(t)
	desc, err := c.DescribeKey(t.Context(), &awskms.DescribeKeyInput{KeyId: aws.String(arn)})
	if err != nil || aws.ToString(desc.KeyMetadata.Arn) != arn || !desc.KeyMetadata.Enabled {
		t.Fatalf("DescribeKey = %+v, %v", desc, err)
	}
	// A policy that would lock the caller out is refused unless bypassed.
	lockout := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"}]}`
	_, err = c.PutKeyPolicy(t.Context(), &awskms.PutKeyPolicyInput{KeyId: aws.String(arn), Policy: aws.String(lockout)})
	wantAPIError(t, err, "MalformedPolicyDocumentException")
	_, err = c.PutKeyPolicy(t.Context(), &awskms.PutKeyPolicyInput{KeyId: aws.String(arn), Policy: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotAction":"kms:*"}]}`)})
	wantAPIError(t, err, "MalformedPolicyDocumentException")
	if _, err := c.PutKeyPolicy(t.Context(), &awskms.PutKeyPolicyInput{KeyId: aws.String(arn), Policy: aws.String(lockout), BypassPolicyLockoutSafetyCheck: true}); err != nil {
		t.Fatalf("PutKeyPolicy with bypass: %v", err)
	}
	// Now locked out, across a restart too.
	_, err = c.GetKeyPolicy(t.Context(), &awskms.GetKeyPolicyInput{KeyId: aws.String(arn)})
	wantAPIError(t, err, "AccessDeniedException")
	s2 := start(t, localkms.Config{Dir: dir})
	_, err = s2.sdk(t).GetKeyPolicy(t.Context(), &awskms.GetKeyPolicyInput{KeyId: aws.String(arn)})
	wantAPIError(t, err, "AccessDeniedException")
}

func TestGetKeyPolicyReturnsPolicy(t *testing.T) {
	s := start(t, localkms.Config{Dir: t.TempDir()})
	p, err := kmspolicy.Seed(kmspolicy.Params{AccountID: "111122223333", RoleARN: s.Credentials().RoleARN, Debug: true, PCR4: []string{kmspolicy.DebugPCR}})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := kmspolicy.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	arn := s.createKey(t, string(doc))
	out, err := s.sdk(t).GetKeyPolicy(t.Context(), &awskms.GetKeyPolicyInput{KeyId: aws.String(arn)})
	if err != nil || aws.ToString(out.Policy) != string(doc) || aws.ToString(out.PolicyName) != "default" {
		t.Fatalf("GetKeyPolicy = %v, %v", out, err)
	}
}

func TestKeyReferences(t *testing.T) {
	s := start(t, localkms.Config{Dir: t.TempDir()})
	arn := s.createKey(t, "")
	id := arn[strings.LastIndex(arn, "/")+1:]
	c := s.sdk(t)
	for _, ref := range []string{arn, id} {
		if _, err := c.Encrypt(t.Context(), &awskms.EncryptInput{KeyId: aws.String(ref), Plaintext: []byte("x")}); err != nil {
			t.Fatalf("Encrypt with %q: %v", ref, err)
		}
	}
	tests := []struct{ ref, code string }{
		{"alias/validator", "UnsupportedOperationException"},
		{strings.Replace(arn, "111122223333", "444455556666", 1), "NotFoundException"},
		{"00000000-0000-4000-8000-000000000000", "NotFoundException"},
	}
	for _, tt := range tests {
		_, err := c.Encrypt(t.Context(), &awskms.EncryptInput{KeyId: aws.String(tt.ref), Plaintext: []byte("x")})
		wantAPIError(t, err, tt.code)
	}
}

func TestDecryptWithoutKeyID(t *testing.T) {
	s := start(t, localkms.Config{Dir: t.TempDir()})
	arn := s.createKey(t, "")
	c := s.sdk(t)
	enc, err := c.Encrypt(t.Context(), &awskms.EncryptInput{KeyId: aws.String(arn), Plaintext: []byte("seed")})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := c.Decrypt(t.Context(), &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	if err != nil || string(dec.Plaintext) != "seed" || aws.ToString(dec.KeyId) != arn {
		t.Fatalf("Decrypt = %+v, %v", dec, err)
	}
}

// attest returns an attestation document from a software NSM of ca whose
// public key is pub (any SPKI, or nil for none).
func attest(t *testing.T, ca *softnsm.CA, spki []byte) []byte {
	t.Helper()
	m, err := softnsm.NewSoftware(&softnsm.SoftwareConfig{CA: ca})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := m.Attest(t.Context(), nsm.AttestRequest{PublicKey: spki})
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func rsaKey(t *testing.T, bits int) (*rsa.PrivateKey, []byte) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return k, spki
}

func TestRecipient(t *testing.T) {
	ca, err := softnsm.NewCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, localkms.Config{Dir: t.TempDir(), TrustedRoots: []*x509.Certificate{ca.Root()}})
	key, spki := rsaKey(t, 2048)
	out, err := s.sdk(t).GenerateRandom(t.Context(), &awskms.GenerateRandomInput{
		NumberOfBytes: aws.Int32(32),
		Recipient:     &types.RecipientInfo{AttestationDocument: attest(t, ca, spki), KeyEncryptionAlgorithm: types.KeyEncryptionMechanismRsaesOaepSha256},
	})
	if err != nil || len(out.Plaintext) != 0 {
		t.Fatalf("GenerateRandom = %v (plaintext %d bytes)", err, len(out.Plaintext))
	}
	if pt, err := cms.Open(out.CiphertextForRecipient, key); err != nil || len(pt) != 32 {
		t.Fatalf("cms.Open = %d bytes, %v", len(pt), err)
	}
}

func TestRecipientRefused(t *testing.T) {
	ca, err := softnsm.NewCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other, err := softnsm.NewCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, spki := rsaKey(t, 2048)
	_, small := rsaKey(t, 1024)
	trusting := start(t, localkms.Config{Dir: t.TempDir(), TrustedRoots: []*x509.Certificate{ca.Root()}})
	trustingNone := start(t, localkms.Config{Dir: t.TempDir()})
	good := attest(t, ca, spki)
	tests := []struct {
		name string
		s    *server
		doc  []byte
		alg  types.KeyEncryptionMechanism
		want string
	}{
		{"no roots configured", trustingNone, good, types.KeyEncryptionMechanismRsaesOaepSha256, "trusts no attestation roots"},
		{"untrusted root", trusting, attest(t, other, spki), types.KeyEncryptionMechanismRsaesOaepSha256, "untrusted certificate chain"},
		{"no public key", trusting, attest(t, ca, nil), types.KeyEncryptionMechanismRsaesOaepSha256, "no public key"},
		{"small key", trusting, attest(t, ca, small), types.KeyEncryptionMechanismRsaesOaepSha256, "at least 2048 bits"},
		{"other algorithm", trusting, good, "RSAES_OAEP_SHA_1", "keyEncryptionAlgorithm"},
		{"corrupt document", trusting, good[:len(good)-1], types.KeyEncryptionMechanismRsaesOaepSha256, "malformed"},
		{"oversized document", trusting, make([]byte, 262145), types.KeyEncryptionMechanismRsaesOaepSha256, "length between 1 and 262144"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.s.sdk(t).GenerateRandom(t.Context(), &awskms.GenerateRandomInput{
				NumberOfBytes: aws.Int32(32), Recipient: &types.RecipientInfo{AttestationDocument: tt.doc, KeyEncryptionAlgorithm: tt.alg},
			})
			wantAPIError(t, err, "ValidationException")
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v does not say %q", err, tt.want)
			}
		})
	}
}

func TestFilesArePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kms")
	s := start(t, localkms.Config{Dir: dir})
	s.createKey(t, "")
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(s.CredentialsFile(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := localkms.New(localkms.Config{Dir: dir}); err == nil || !strings.Contains(err.Error(), "group or others") {
		t.Fatalf("New with a readable credentials file: %v", err)
	}
}

// TestTLSRootRefuses: a damaged TLS root stops the server rather than
// being replaced, which would break every client trusting the old one.
func TestTLSRootRefuses(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(t *testing.T, dir string)
		want  string
	}{
		{"key without its certificate", func(t *testing.T, dir string) {
			remove(t, filepath.Join(dir, localkms.RootFile))
		}, "already exists"},
		{"certificate without its key", func(t *testing.T, dir string) {
			remove(t, filepath.Join(dir, "tls-root-key.pem"))
		}, "failed to read key"},
		{"key readable by others", func(t *testing.T, dir string) {
			if err := os.Chmod(filepath.Join(dir, "tls-root-key.pem"), 0o640); err != nil {
				t.Fatal(err)
			}
		}, "chmod 600"},
		{"key of another root", func(t *testing.T, dir string) {
			other := t.TempDir()
			if _, err := localkms.New(localkms.Config{Dir: other}); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(filepath.Join(other, "tls-root-key.pem"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "tls-root-key.pem"), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := localkms.New(localkms.Config{Dir: dir}); err != nil {
				t.Fatal(err)
			}
			tt.spoil(t, dir)
			if _, err := localkms.New(localkms.Config{Dir: dir}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func TestStatePersists(t *testing.T) {
	dir := t.TempDir()
	s1, err := localkms.New(localkms.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := localkms.New(localkms.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s1.RootPEM(), s2.RootPEM()) || s1.Credentials() != s2.Credentials() || s1.AdminCredentials() != s2.AdminCredentials() {
		t.Fatal("TLS root or credentials changed across restarts")
	}
}

func TestSecretsStayOutOfLogs(t *testing.T) {
	var logs bytes.Buffer
	s := start(t, localkms.Config{Dir: t.TempDir(), Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	arn := s.createKey(t, "")
	secretPT := []byte("do-not-log-this-plaintext")
	c := s.sdk(t)
	if _, err := c.Encrypt(t.Context(), &awskms.EncryptInput{KeyId: aws.String(arn), Plaintext: secretPT}); err != nil {
		t.Fatal(err)
	}
	_, _ = c.Decrypt(t.Context(), &awskms.DecryptInput{CiphertextBlob: []byte("lkms-bogus")})
	if _, err := s.admin(t).Encrypt(t.Context(), &awskms.EncryptInput{KeyId: aws.String(arn), Plaintext: secretPT}); err != nil {
		t.Fatal(err)
	}
	creds, admin := s.Credentials(), s.AdminCredentials()
	formatted := fmt.Sprintf("%v %+v %#v %v %+v %#v", creds, creds, creds, admin, admin, admin)
	for _, secret := range []string{string(secretPT), creds.SecretAccessKey, creds.SessionToken, admin.SecretAccessKey} {
		if strings.Contains(logs.String(), secret) || strings.Contains(formatted, secret) {
			t.Fatalf("a secret appears in the logs or formatted credentials")
		}
	}
	if !strings.Contains(logs.String(), "InvalidCiphertextException") {
		t.Fatalf("refusal not logged: %s", logs.String())
	}
}
