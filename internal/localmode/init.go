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
	"github.com/tmkms-nitro/tmkms-nitro/internal/host"
	"github.com/tmkms-nitro/tmkms-nitro/internal/kmspolicy"
	"github.com/tmkms-nitro/tmkms-nitro/internal/pcr"
	"github.com/tmkms-nitro/tmkms-nitro/internal/pubkey"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
	"github.com/tmkms-nitro/tmkms-nitro/internal/softnsm"
)

// InitOptions configure Init.
type InitOptions struct {
	Home     string
	ChainIDs []string // the chains the key may sign for; the first goes into tmkms.toml
	Enclave  string   // the enclave program; "" finds it (FindEnclave)
	Address  string   // the validator's priv_validator_laddr; default unix://<home>/privval.sock
	Force    bool     // replace existing keys
	Nonce    []byte   // echoed in the attestation documents; nil: a random one
	KeyType  string   // the consensus key's type (signer.KeyTypes); "": ed25519
	// Anchor, when set, is sealed first, the consensus key is bound to
	// it, and tmkms.toml gets an [ha] table naming the sealed anchor.
	Anchor   *host.AnchorFiles
	Instance string // this signer's name in the anchor's records; default the host name
	Log      *slog.Logger
}

// InitResult is what Init made.
type InitResult struct {
	*host.Sealed
	ConfigPath string
	PCR0       []byte // of the enclave binary, as the KMS key policy pins it
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
	pcr0, err := softnsm.PCR0File(bin)
	if err != nil {
		return nil, err
	}
	keyARN, err := createKey(ctx, kms, pcr0)
	if err != nil {
		return nil, err
	}
	cfg, err := writeConfig(home, o, kms, keyARN)
	if err != nil {
		return nil, err
	}
	ectx, stop := context.WithCancel(ctx)
	enc, err := StartEnclave(ectx, bin, home, o.Log, nil)
	if err != nil {
		stop()
		return nil, err
	}
	defer func() { stop(); enc.Wait() }()
	res, err := sealKeys(ctx, home, cfg, kms, o)
	if err != nil {
		return nil, err
	}
	res.PCR0 = pcr0
	return res, nil
}

func ensureCA(home string) error {
	dir := filepath.Join(home, enclave.LocalNSMDir)
	if _, err := softnsm.LoadCARoot(dir); err == nil {
		return nil
	}
	ca, err := softnsm.NewCA(time.Now())
	if err != nil {
		return err
	}
	return ca.Save(dir)
}

// createKey makes the KMS key whose policy lets only this enclave binary
// (PCR0) on this "instance" (PCR4) decrypt, with the unmodified AWS SDK.
func createKey(ctx context.Context, k *KMS, pcr0 []byte) (string, error) {
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
	c.ChainID = o.ChainIDs[0]
	c.Addresses = []string{o.Address}
	if o.Address == "" {
		c.Addresses = []string{"unix://" + filepath.Join(home, "privval.sock")}
	}
	c.KMSKeyID = keyARN
	creds := k.Credentials()
	c.Credentials = &config.Credentials{KeyID: creds.AccessKeyID, SecretKey: creds.SecretAccessKey, SessionToken: creds.SessionToken}
	if o.Anchor != nil {
		c.HA = o.Anchor.HA(filepath.Join(home, "secrets", "anchor.sealed"), o.Instance)
	}
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

func sealKeys(ctx context.Context, home string, cfg *config.Config, k *KMS, o InitOptions) (*InitResult, error) {
	cer := &host.Ceremony{
		Dial:   func(ctx context.Context) (net.Conn, error) { return DialConfig(ctx, home) },
		Region: cfg.AWSRegion, KMSKeyID: cfg.KMSKeyID, Creds: host.ProtoCredentials(k.Credentials().AWS()),
		ChainIDs: o.ChainIDs, Nonce: o.Nonce, Anchor: o.Anchor, Force: o.Force, KeyType: o.KeyType,
	}
	paths := host.Paths{Consensus: cfg.SealedConsensusKeyPath, Identity: cfg.SealedIDKeyPath}
	if cfg.HA.Anchored() {
		paths.Anchor = cfg.HA.SealedAnchorPath
	}
	sealed, err := cer.Run(ctx, paths)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.StateFilePath), 0o700); err != nil {
		return nil, err
	}
	st, err := signstate.Open(cfg.StateFilePath, signstate.Options{AllowMissing: true})
	if err != nil {
		return nil, err
	}
	st.Close()
	if err := atomicfile.WriteFile(filepath.Join(home, "pubkey.json"), []byte(pubkey.JSON(sealed.Consensus.Key())+"\n"), 0o644); err != nil {
		return nil, err
	}
	return &InitResult{Sealed: sealed, ConfigPath: filepath.Join(home, "tmkms.toml")}, nil
}
