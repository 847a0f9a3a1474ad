package localkms_test

import (
	"crypto/x509"
	"encoding/json"
	"net/http"
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
	"github.com/tmkms-nitro/tmkms-nitro/internal/softnsm"
)

// TestSeedPolicyPrincipals: under kmspolicy.Seed's policy the instance
// role (what a compromised host holds) cannot plant a key with Encrypt,
// while the administrator can import one; only an attested enclave gets
// key material, whoever asks.
func TestSeedPolicyPrincipals(t *testing.T) {
	ca, err := softnsm.NewCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, localkms.Config{Dir: t.TempDir(), TrustedRoots: []*x509.Certificate{ca.Root()}})
	// The software NSM's PCRs are zeros, which the debug pins match.
	p, err := kmspolicy.Seed(kmspolicy.Params{AccountID: "111122223333", RoleARN: s.Credentials().RoleARN, Debug: true, PCR4: []string{kmspolicy.DebugPCR}})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := kmspolicy.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	// The role may not create it: it could not change the policy after.
	_, err = s.sdk(t).CreateKey(t.Context(), &awskms.CreateKeyInput{Policy: aws.String(string(doc))})
	wantAPIError(t, err, "MalformedPolicyDocumentException")
	out, err := s.admin(t).CreateKey(t.Context(), &awskms.CreateKeyInput{Policy: aws.String(string(doc))})
	if err != nil {
		t.Fatalf("admin CreateKey: %v", err)
	}
	arn := aws.ToString(out.KeyMetadata.Arn)
	rsaPriv, spki := rsaKey(t, 2048)
	recipient := &types.RecipientInfo{AttestationDocument: attest(t, ca, spki), KeyEncryptionAlgorithm: types.KeyEncryptionMechanismRsaesOaepSha256}
	seed := []byte("0123456789abcdef0123456789abcdef")

	// Role: no planting.
	_, err = s.sdk(t).Encrypt(t.Context(), &awskms.EncryptInput{KeyId: aws.String(arn), Plaintext: seed})
	wantAPIError(t, err, "AccessDeniedException")
	if !strings.Contains(err.Error(), kmspolicy.SidDenyRole) || !strings.Contains(err.Error(), s.Credentials().Principal) {
		t.Errorf("role Encrypt refused without naming the role and %q: %v", kmspolicy.SidDenyRole, err)
	}
	_, err = s.sdk(t).GenerateDataKey(t.Context(), &awskms.GenerateDataKeyInput{KeyId: aws.String(arn), NumberOfBytes: aws.Int32(32)})
	wantAPIError(t, err, "AccessDeniedException")

	// Admin: the import ceremony's Encrypt works.
	enc, err := s.admin(t).Encrypt(t.Context(), &awskms.EncryptInput{KeyId: aws.String(arn), Plaintext: seed})
	if err != nil {
		t.Fatalf("admin Encrypt: %v", err)
	}
	// But not even the admin reads it back without an attested enclave.
	_, err = s.admin(t).Decrypt(t.Context(), &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	wantAPIError(t, err, "AccessDeniedException")
	_, err = s.sdk(t).Decrypt(t.Context(), &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	wantAPIError(t, err, "AccessDeniedException")

	// The attested enclave, through the role, unseals the imported key and
	// generates a new one, each only encrypted to its attested key.
	dec, err := s.sdk(t).Decrypt(t.Context(), &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, Recipient: recipient})
	if err != nil || len(dec.Plaintext) != 0 {
		t.Fatalf("enclave Decrypt = %v (plaintext %d bytes)", err, len(dec.Plaintext))
	}
	if pt, err := cms.Open(dec.CiphertextForRecipient, rsaPriv); err != nil || string(pt) != string(seed) {
		t.Fatalf("imported seed through the recipient = %q, %v", pt, err)
	}
	gen, err := s.sdk(t).GenerateDataKey(t.Context(), &awskms.GenerateDataKeyInput{KeyId: aws.String(arn), NumberOfBytes: aws.Int32(32), Recipient: recipient})
	if err != nil || len(gen.Plaintext) != 0 {
		t.Fatalf("enclave GenerateDataKey = %v (plaintext %d bytes)", err, len(gen.Plaintext))
	}
	if pt, err := cms.Open(gen.CiphertextForRecipient, rsaPriv); err != nil || len(pt) != 32 {
		t.Fatalf("generated key through the recipient: %d bytes, %v", len(pt), err)
	}
}

func TestAdminCredentials(t *testing.T) {
	dir := t.TempDir()
	s := start(t, localkms.Config{Dir: dir})
	role, admin := s.Credentials(), s.AdminCredentials()
	if admin.Principal != "arn:aws:iam::111122223333:user/tmkms-admin" || admin.SessionToken != "" || admin.RoleARN != "" ||
		!strings.HasPrefix(admin.AccessKeyID, "AKIA") || admin.SecretAccessKey == "" || admin.AccessKeyID == role.AccessKeyID {
		t.Fatalf("admin credentials %v (token %t, role %q)", admin, admin.SessionToken != "", admin.RoleARN)
	}
	for _, c := range []localkms.Credentials{role, admin} {
		status, e := s.send(t, s.signedAs(t, c, "GenerateRandom", []byte(`{"NumberOfBytes":8}`), time.Now()))
		if status != http.StatusOK {
			t.Fatalf("%s: status %d: %+v", c.Principal, status, e)
		}
	}
	// Each principal is its own: a key only the admin may use refuses the role.
	only := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"` + admin.Principal + `"},"Action":"kms:*","Resource":"*"}]}`
	out, err := s.admin(t).CreateKey(t.Context(), &awskms.CreateKeyInput{Policy: aws.String(only)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.sdk(t).DescribeKey(t.Context(), &awskms.DescribeKeyInput{KeyId: out.KeyMetadata.Arn})
	wantAPIError(t, err, "AccessDeniedException")
	if _, err := s.admin(t).DescribeKey(t.Context(), &awskms.DescribeKeyInput{KeyId: out.KeyMetadata.Arn}); err != nil {
		t.Fatal(err)
	}
	// Mixing one principal's key ID with the other's secret or token fails.
	tests := []struct {
		name  string
		creds localkms.Credentials
		code  string
	}{
		{"admin key with the role's token", localkms.Credentials{AccessKeyID: admin.AccessKeyID, SecretAccessKey: admin.SecretAccessKey, SessionToken: role.SessionToken}, "UnrecognizedClientException"},
		{"role key without its token", localkms.Credentials{AccessKeyID: role.AccessKeyID, SecretAccessKey: role.SecretAccessKey}, "UnrecognizedClientException"},
		{"admin key with the role's secret", localkms.Credentials{AccessKeyID: admin.AccessKeyID, SecretAccessKey: role.SecretAccessKey}, "InvalidSignatureException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, e := s.send(t, s.signedAs(t, tt.creds, "GenerateRandom", []byte(`{"NumberOfBytes":8}`), time.Now()))
			if status != http.StatusBadRequest || e.Type != tt.code {
				t.Fatalf("got %d %+v, want 400 %s", status, e, tt.code)
			}
		})
	}
}

// TestAdminCredentialsAddedToOldFile: a credentials file written before
// administrator credentials existed keeps its role credentials and gains
// administrator ones, saved so that they survive a restart.
func TestAdminCredentialsAddedToOldFile(t *testing.T) {
	dir := t.TempDir()
	old := localkms.Credentials{
		AccessKeyID: "ASIAOLDOLDOLDOLDOLDO", SecretAccessKey: "old-secret", SessionToken: "old-token",
		Principal: "arn:aws:sts::111122223333:assumed-role/tmkms-local/localkms", RoleARN: "arn:aws:iam::111122223333:role/tmkms-local",
	}
	data, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, localkms.CredentialsFile)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s1, err := localkms.New(localkms.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if s1.Credentials() != old || s1.AdminCredentials().AccessKeyID == "" {
		t.Fatalf("loaded %v and admin %v, want the old role credentials and new admin ones", s1.Credentials(), s1.AdminCredentials())
	}
	saved, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Readers of the old format still find the role's credentials at the top.
	var top localkms.Credentials
	if err := json.Unmarshal(saved, &top); err != nil || top != old {
		t.Fatalf("top level of the saved file = %v, %v", top, err)
	}
	s2, err := localkms.New(localkms.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if s2.AdminCredentials() != s1.AdminCredentials() || s2.Credentials() != old {
		t.Fatal("credentials changed across a restart")
	}
}

func TestIncompleteAdminCredentialsRefused(t *testing.T) {
	for name, admin := range map[string]string{
		"no secret":     `{"access_key_id":"AKIAX","principal":"arn:aws:iam::111122223333:user/a"}`,
		"with a token":  `{"access_key_id":"AKIAX","secret_access_key":"s","session_token":"t","principal":"arn:aws:iam::111122223333:user/a"}`,
		"unknown field": `{"access_key_id":"AKIAX","secret_access_key":"s","principal":"arn:aws:iam::111122223333:user/a","x":1}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			file := `{"access_key_id":"ASIAX","secret_access_key":"s","session_token":"t",` +
				`"principal":"arn:aws:sts::111122223333:assumed-role/r/localkms","role_arn":"arn:aws:iam::111122223333:role/r","admin":` + admin + `}`
			if err := os.WriteFile(filepath.Join(dir, localkms.CredentialsFile), []byte(file), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := localkms.New(localkms.Config{Dir: dir}); err == nil || !strings.Contains(err.Error(), "not a complete credentials file") {
				t.Fatalf("New = %v", err)
			}
		})
	}
}
