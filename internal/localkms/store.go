package localkms

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/tmkms-nitro/tmkms-nitro/internal/atomicfile"
)

// Files and directories the server keeps under Config.Dir.
const (
	// RootFile is the PEM root certificate clients must trust for TLS.
	RootFile = "tls-root.pem"
	// CredentialsFile holds the issued credentials: JSON, the role's
	// Credentials with the administrator's under "admin".
	CredentialsFile = "credentials.json"

	rootKeyFile = "tls-root-key.pem"
	keysDir     = "keys"
)

// Credentials are one principal's credentials. The server issues two sets
// and accepts requests signed with either: the instance role's (an STS
// session, what the enclave and the host use) and an administrator's (an
// IAM user's long-term keys, for CreateKey, PutKeyPolicy and importing a
// key with Encrypt). Requests act as Principal in key policies.
type Credentials struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	// SessionToken is set for the role's temporary credentials and empty
	// for the administrator's long-term ones, as in AWS.
	SessionToken string `json:"session_token,omitempty"`
	// Principal is the ARN policies see: an STS session of RoleARN, as an
	// EC2 instance role presents itself to KMS, or the administrator's IAM
	// user ARN.
	Principal string `json:"principal"`
	// RoleARN is the role to name in key policies (kmspolicy.Params.RoleARN);
	// empty for the administrator.
	RoleARN string `json:"role_arn,omitempty"`
}

// AWS returns the credentials in the SDK's form. They do not expire.
func (c Credentials) AWS() aws.Credentials {
	return aws.Credentials{
		AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey,
		SessionToken: c.SessionToken, Source: "localkms",
	}
}

// String, GoString and LogValue keep the secret and the token out of logs.
func (c Credentials) String() string {
	return fmt.Sprintf("localkms.Credentials{AccessKeyID:%s Principal:%s secret:redacted}", c.AccessKeyID, c.Principal)
}

func (c Credentials) GoString() string { return c.String() }

func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("access_key_id", c.AccessKeyID), slog.String("principal", c.Principal))
}

func (c Credentials) validRole() bool {
	return c.AccessKeyID != "" && c.SecretAccessKey != "" && c.SessionToken != "" &&
		c.Principal != "" && c.RoleARN != ""
}

func (c Credentials) validAdmin() bool {
	return c.AccessKeyID != "" && c.SecretAccessKey != "" && c.SessionToken == "" &&
		c.Principal != "" && c.RoleARN == ""
}

// credentialsFile is CredentialsFile's content: the role's credentials at
// the top level, as the file held before administrator credentials
// existed, so that readers of the old format still find them there.
type credentialsFile struct {
	Credentials
	Admin *Credentials `json:"admin,omitempty"`
}

// newRoleCredentials issues credentials shaped like STS temporary ones.
func newRoleCredentials(partition, account, role string) (Credentials, error) {
	raw := make([]byte, 10+30+96)
	if _, err := rand.Read(raw); err != nil {
		return Credentials{}, fmt.Errorf("localkms: failed to generate credentials: %w", err)
	}
	return Credentials{
		AccessKeyID:     "ASIA" + base32.StdEncoding.EncodeToString(raw[:10]),
		SecretAccessKey: base64.RawStdEncoding.EncodeToString(raw[10:40]),
		SessionToken:    base64.StdEncoding.EncodeToString(raw[40:]),
		Principal:       fmt.Sprintf("arn:%s:sts::%s:assumed-role/%s/localkms", partition, account, role),
		RoleARN:         fmt.Sprintf("arn:%s:iam::%s:role/%s", partition, account, role),
	}, nil
}

// newAdminCredentials issues credentials shaped like an IAM user's access
// key: no session token.
func newAdminCredentials(partition, account, user string) (Credentials, error) {
	raw := make([]byte, 10+30)
	if _, err := rand.Read(raw); err != nil {
		return Credentials{}, fmt.Errorf("localkms: failed to generate credentials: %w", err)
	}
	return Credentials{
		AccessKeyID:     "AKIA" + base32.StdEncoding.EncodeToString(raw[:10]),
		SecretAccessKey: base64.RawStdEncoding.EncodeToString(raw[10:]),
		Principal:       fmt.Sprintf("arn:%s:iam::%s:user/%s", partition, account, user),
	}, nil
}

// loadOrIssueCredentials returns the role's and the administrator's
// credentials saved in dir, issuing and saving new ones on first start. A
// file from before administrator credentials existed keeps its role
// credentials and gains administrator ones.
func loadOrIssueCredentials(dir string, cfg Config) (role, admin Credentials, err error) {
	path := filepath.Join(dir, CredentialsFile)
	data, err := readPrivate(path)
	var f credentialsFile
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if f.Credentials, err = newRoleCredentials(cfg.Partition, cfg.AccountID, cfg.RoleName); err != nil {
			return Credentials{}, Credentials{}, err
		}
	case err != nil:
		return Credentials{}, Credentials{}, err
	default:
		if err := strictJSON(data, &f); err != nil || !f.validRole() || f.Admin != nil && !f.Admin.validAdmin() {
			return Credentials{}, Credentials{}, fmt.Errorf("localkms: failed to load %s: not a complete credentials file", path)
		}
		if f.Admin != nil {
			return f.Credentials, *f.Admin, nil
		}
	}
	a, err := newAdminCredentials(cfg.Partition, cfg.AccountID, cfg.AdminUserName)
	if err != nil {
		return Credentials{}, Credentials{}, err
	}
	f.Admin = &a
	return f.Credentials, a, writeJSON(path, f)
}

// readPrivate reads a file that must not be readable by group or others:
// anyone who can read it holds the key material or the credentials.
func readPrivate(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("localkms: %s has mode %v: must not be accessible by group or others", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("localkms: failed to read %s: %w", path, err)
	}
	return data, nil
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("localkms: failed to encode %s: %w", filepath.Base(path), err)
	}
	if err := atomicfile.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("localkms: failed to write %s: %w", path, err)
	}
	return nil
}

// strictJSON decodes data into v refusing unknown fields, so that a typo in
// a hand-edited file is an error, not a silently dropped setting.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// makePrivateDir creates dir with mode 0700 if it is missing. An existing
// directory keeps its mode: the files in it are 0600 and checked on read.
func makePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("localkms: failed to create %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("localkms: failed to stat %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("localkms: %s is not a directory", dir)
	}
	return nil
}
