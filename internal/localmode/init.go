package localmode

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/tmkms-nitro/tmkms-nitro/internal/atomicfile"
	"github.com/tmkms-nitro/tmkms-nitro/internal/config"
	"github.com/tmkms-nitro/tmkms-nitro/internal/enclave"
	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/host"
	"github.com/tmkms-nitro/tmkms-nitro/internal/kmspolicy"
	"github.com/tmkms-nitro/tmkms-nitro/internal/nsm"
	"github.com/tmkms-nitro/tmkms-nitro/internal/pcr"
	"github.com/tmkms-nitro/tmkms-nitro/internal/pubkey"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// InitOptions configure Init.
type InitOptions struct {
	Home    string
	ChainID string
	Enclave string // the enclave program; "" finds it (FindEnclave)
	Address string // the validator's priv_validator_laddr; default unix://<home>/privval.sock
	Force   bool   // replace existing keys
	Log     *slog.Logger
}

// InitResult is what Init made.
type InitResult struct {
	PubKey      []byte
	Attestation []byte
	ConfigPath  string
}

// Init creates everything a local validator needs in o.Home: the software
// NSM's CA, the local KMS with a key whose policy pins the enclave binary's
// PCR0, tmkms.toml, and the consensus and identity keys, generated inside
// the enclave and sealed there by the local KMS through init's own code
// path. It writes pubkey.json.
func Init(ctx context.Context, o InitOptions) (*InitResult, error) {
	bin, err := FindEnclave(o.Enclave)
	if err != nil {
		return nil, err
	}
	home, err := filepath.Abs(o.Home)
	if err != nil {
		return nil, err
	}
	secret := filepath.Join(home, "secrets", "secret.key")
	if _, err := os.Stat(secret); err == nil && !o.Force {
		return nil, fmt.Errorf("%w at %s (pass --force to replace it)", host.ErrKeyExists, secret)
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	if err := ensureCA(home); err != nil {
		return nil, err
	}
	kms, err := StartKMS(home, o.Log)
	if err != nil {
		return nil, err
	}
	defer kms.Close()
	keyARN, err := createKey(ctx, kms, bin)
	if err != nil {
		return nil, err
	}
	cfg, err := writeConfig(home, o, kms, keyARN)
	if err != nil {
		return nil, err
	}
	ectx, stop := context.WithCancel(ctx)
	enc, err := StartEnclave(ectx, bin, home, o.Log)
	if err != nil {
		stop()
		return nil, err
	}
	defer func() { stop(); enc.Wait() }()
	return sealKeys(ctx, home, cfg, kms, o.Force)
}

func ensureCA(home string) error {
	dir := filepath.Join(home, enclave.LocalNSMDir)
	if _, err := nsm.LoadCARoot(dir); err == nil {
		return nil
	}
	ca, err := nsm.NewCA(time.Now())
	if err != nil {
		return err
	}
	return ca.Save(dir)
}

// createKey makes the KMS key whose policy lets only this enclave binary
// (PCR0) on this "instance" (PCR4) decrypt, with the unmodified AWS SDK.
func createKey(ctx context.Context, k *KMS, bin string) (string, error) {
	pcr0, err := nsm.PCR0File(bin)
	if err != nil {
		return "", err
	}
	pcr4 := pcr.PCR4(enclave.LocalInstanceID)
	pol, err := kmspolicy.Seed(kmspolicy.Params{
		AccountID: accountOf(k.Credentials().RoleARN),
		RoleARN:   k.Credentials().RoleARN,
		PCR0:      []string{fmt.Sprintf("%x", pcr0)},
		PCR4:      []string{pcr.Hex(pcr4)},
	})
	if err != nil {
		return "", err
	}
	doc, err := kmspolicy.Marshal(pol)
	if err != nil {
		return "", err
	}
	admin, err := k.Admin()
	if err != nil {
		return "", err
	}
	out, err := admin.CreateKey(ctx, &awskms.CreateKeyInput{Policy: aws.String(string(doc)), Description: aws.String("tmkms-nitro local validator key")})
	if err != nil {
		return "", fmt.Errorf("local KMS: CreateKey: %w", err)
	}
	return aws.ToString(out.KeyMetadata.Arn), nil
}

// accountOf extracts the account from arn:aws:iam::ACCOUNT:role/NAME.
func accountOf(arn string) string {
	if f := strings.Split(arn, ":"); len(f) > 4 {
		return f[4]
	}
	return ""
}

func writeConfig(home string, o InitOptions, k *KMS, keyARN string) (*config.Config, error) {
	c := config.Default(k.Region())
	c.ChainID = o.ChainID
	c.Address = o.Address
	if c.Address == "" {
		c.Address = "unix://" + filepath.Join(home, "privval.sock")
	}
	c.KMSKeyID = keyARN
	creds := k.Credentials()
	c.Credentials = &config.Credentials{KeyID: creds.AccessKeyID, SecretKey: creds.SecretAccessKey, SessionToken: creds.SessionToken}
	data, err := config.Marshal(c)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(home, "tmkms.toml")
	if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
		return nil, err
	}
	return config.Load(path)
}

func sealKeys(ctx context.Context, home string, cfg *config.Config, k *KMS, force bool) (*InitResult, error) {
	dial := func(ctx context.Context) (net.Conn, error) { return DialConfig(ctx, home) }
	creds := host.ProtoCredentials(k.Credentials().AWS())
	res := &InitResult{ConfigPath: filepath.Join(home, "tmkms.toml")}
	for _, p := range []struct{ purpose, path string }{
		{enclaveproto.PurposeConsensus, cfg.SealedConsensusKeyPath},
		{enclaveproto.PurposeIdentity, cfg.SealedIDKeyPath},
	} {
		gk, err := host.SealKey(ctx, dial, &enclaveproto.GenerateKey{Region: cfg.AWSRegion, KMSKeyID: cfg.KMSKeyID, Credentials: creds, Purpose: p.purpose})
		if err != nil {
			return nil, fmt.Errorf("generating the %s key: %w", p.purpose, err)
		}
		if err := host.WriteSecret(p.path, gk.SealedKey, force); err != nil {
			return nil, err
		}
		if p.purpose == enclaveproto.PurposeConsensus {
			res.PubKey, res.Attestation = gk.PubKey, gk.Attestation
		}
	}
	if err := os.MkdirAll(filepath.Dir(cfg.StateFilePath), 0o700); err != nil {
		return nil, err
	}
	st, err := signstate.Open(cfg.StateFilePath, signstate.Options{AllowMissing: true})
	if err != nil {
		return nil, err
	}
	st.Close()
	if err := atomicfile.WriteFile(filepath.Join(home, "pubkey.json"), []byte(pubkey.JSON(res.PubKey)+"\n"), 0o644); err != nil {
		return nil, err
	}
	return res, nil
}
