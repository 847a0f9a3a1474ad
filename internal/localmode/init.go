package localmode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
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
	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
	"github.com/tmkms-nitro/tmkms-nitro/internal/softnsm"
)

// InitOptions configure Init.
type InitOptions struct {
	Home string
	// ChainIDs are the chains served: one makes tmkms-light's single-chain
	// tmkms.toml, several a [[validator]] table each.
	ChainIDs []string
	// KeyPerChain seals a consensus key for each chain, bound to it alone;
	// otherwise one key is bound to every chain of ChainIDs.
	KeyPerChain bool
	Enclave     string // the enclave program; "" finds it (FindEnclave)
	// Addresses are the validators' priv_validator_laddr by chain id
	// ("" for the only chain); default unix://<home>/privval.sock, or
	// privval-<chain id>.sock with several chains.
	Addresses map[string]string
	Force     bool   // replace existing keys
	Nonce     []byte // echoed in the attestation documents; nil: a random one
	KeyType   string // the consensus key's type (signer.KeyTypes); "": ed25519
	// Anchor, when set, is sealed first, the consensus key is bound to
	// it, and tmkms.toml gets an [ha] table naming the sealed anchor.
	Anchor   *host.AnchorFiles
	Instance string // this signer's name in the anchor's records; default the host name
	Log      *slog.Logger
}

// InitResult is what Init made.
type InitResult struct {
	*host.Sealed // the first chain's key, with the identity key and the anchor
	// PubKeys are the consensus keys by chain id; a shared key is listed
	// under each of its chains.
	PubKeys    map[string]signer.PubKey
	ConfigPath string
	PCR0       []byte // of the enclave binary, as the KMS key policy pins it
}

// Init creates everything a local validator needs in o.Home: the software
// NSM's CA, the local KMS with a key whose policy pins the enclave binary's
// PCR0, tmkms.toml, and the consensus and identity keys, generated inside
// the enclave and sealed there by the local KMS through init's own code
// path. It writes pubkey.json, or with several chains a
// pubkey-<chain id>.json per chain.
func Init(ctx context.Context, o InitOptions) (*InitResult, error) {
	bin, err := FindEnclave(o.Enclave)
	if err != nil {
		return nil, err
	}
	home, err := filepath.Abs(o.Home)
	if err != nil {
		return nil, err
	}
	if len(o.ChainIDs) == 0 {
		return nil, errors.New("localmode: no chain id")
	}
	for _, key := range keyPaths(home, o) {
		if _, err := os.Stat(key); err == nil && !o.Force {
			return nil, fmt.Errorf("%w at %s (pass --force to replace it)", host.ErrKeyExists, key)
		}
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

// keyPaths are the sealed consensus keys' paths by chain id: one shared
// key, or one per chain.
func keyPaths(home string, o InitOptions) map[string]string {
	out := map[string]string{}
	for _, id := range o.ChainIDs {
		out[id] = filepath.Join(home, "secrets", "secret.key")
		if o.KeyPerChain && len(o.ChainIDs) > 1 {
			out[id] = filepath.Join(home, "secrets", config.FileName(id)+".key")
		}
	}
	return out
}

// address is the chain's validator address: the one given, or a socket in
// home.
func address(home string, o InitOptions, chainID string) string {
	if a := o.Addresses[chainID]; a != "" {
		return a
	}
	if a := o.Addresses[""]; a != "" && len(o.ChainIDs) == 1 {
		return a
	}
	if len(o.ChainIDs) == 1 {
		return "unix://" + filepath.Join(home, "privval.sock")
	}
	return "unix://" + filepath.Join(home, "privval-"+config.FileName(chainID)+".sock")
}

func writeConfig(home string, o InitOptions, k *KMS, keyARN string) (*config.Config, error) {
	for id := range o.Addresses {
		if id != "" && !slices.Contains(o.ChainIDs, id) {
			return nil, fmt.Errorf("localmode: an address for chain %q, which is not one of the chains (%q)", id, o.ChainIDs)
		}
	}
	if _, ok := o.Addresses[""]; ok && len(o.ChainIDs) > 1 {
		return nil, fmt.Errorf("localmode: with several chains, give each address as CHAIN_ID=URL")
	}
	c := config.Default(k.Region())
	c.ChainID = o.ChainIDs[0]
	c.Addresses = []string{address(home, o, c.ChainID)}
	c.KMSKeyID = keyARN
	creds := k.Credentials()
	c.Credentials = &config.Credentials{KeyID: creds.AccessKeyID, SecretKey: creds.SecretAccessKey, SessionToken: creds.SessionToken}
	if o.Anchor != nil {
		c.HA = o.Anchor.HA(filepath.Join(home, "secrets", "anchor.sealed"), o.Instance)
	}
	if len(o.ChainIDs) > 1 {
		keys := keyPaths(home, o)
		var chains []config.Chain
		for _, id := range o.ChainIDs {
			chains = append(chains, config.Chain{ID: id, Addresses: []string{address(home, o, id)}, Key: keys[id]})
		}
		c = config.ForChains(c, chains)
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

// sealKeys seals each distinct consensus key of cfg, bound to the chains
// that use it, the identity key and (with an anchor) the anchor, and
// creates each chain's empty state file.
func sealKeys(ctx context.Context, home string, cfg *config.Config, k *KMS, o InitOptions) (*InitResult, error) {
	res := &InitResult{PubKeys: map[string]signer.PubKey{}, ConfigPath: filepath.Join(home, "tmkms.toml")}
	keys, chainsOf := cfg.ConsensusKeys()
	first := cfg.Chains()[0]
	for i, key := range keys {
		cer := &host.Ceremony{
			Dial:   func(ctx context.Context) (net.Conn, error) { return DialConfig(ctx, home) },
			Region: cfg.AWSRegion, KMSKeyID: cfg.KMSKeyID, Creds: host.ProtoCredentials(k.Credentials().AWS()),
			ChainIDs: chainsOf[key], Nonce: o.Nonce, Force: o.Force, KeyType: o.KeyType,
		}
		paths := host.Paths{Consensus: key}
		if i == 0 {
			// The first ceremony seals what the chains share.
			cer.Anchor, paths.Identity = o.Anchor, cfg.SealedIDKeyPath
			if first.HA.Anchored() {
				paths.Anchor = first.HA.SealedAnchorPath
			}
		} else {
			cer.Nonce, cer.AnchorFingerprint = res.Nonce, res.Fingerprint
		}
		sealed, err := cer.Run(ctx, paths)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			res.Sealed = sealed
		}
		for _, id := range chainsOf[key] {
			res.PubKeys[id] = sealed.Consensus.Key()
		}
	}
	if err := host.CreateStateFiles(cfg); err != nil {
		return nil, err
	}
	for _, ch := range cfg.Chains() {
		name := "pubkey.json"
		if len(o.ChainIDs) > 1 {
			name = "pubkey-" + config.FileName(ch.ChainID) + ".json"
		}
		if err := atomicfile.WriteFile(filepath.Join(home, name), []byte(pubkey.JSON(res.PubKeys[ch.ChainID])+"\n"), 0o644); err != nil {
			return nil, err
		}
	}
	return res, nil
}
