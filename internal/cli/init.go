package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/tmkms-nitro/tmkms-nitro/internal/atomicfile"
	"github.com/tmkms-nitro/tmkms-nitro/internal/config"
	"github.com/tmkms-nitro/tmkms-nitro/internal/host"
	"github.com/tmkms-nitro/tmkms-nitro/internal/pubkey"
	"github.com/tmkms-nitro/tmkms-nitro/internal/sealedkey"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
	"github.com/tmkms-nitro/tmkms-nitro/internal/transport"
)

// keyFlags are the flags init and import share (tmkms-light's names).
type keyFlags struct {
	region, keyID, display, prefix, dir string
	keyType                             string
	cid                                 uint
	force                               bool
	ceremonyFlags
}

// keyTypeFlag registers --key-type, the consensus key's type, into dst
// (default ed25519); the names come from package signer.
func keyTypeFlag(fs *flag.FlagSet, dst *string) {
	*dst = signer.KeyTypeEd25519
	fs.Func("key-type", "the consensus key's type: "+strings.Join(signer.KeyTypes(), " or ")+" (default ed25519)", func(v string) error {
		if err := signer.CheckKeyType(v); err != nil {
			return err
		}
		*dst = v
		return nil
	})
}

func (k *keyFlags) register(fs *flag.FlagSet) {
	k.ceremonyFlags.register(fs)
	fs.StringVar(&k.region, "a", "", "AWS region of the KMS key (required)")
	fs.StringVar(&k.keyID, "k", "", "KMS key id or ARN that seals the keys (required)")
	fs.StringVar(&k.display, "p", "bech32", "how to print the public key: bech32, base64 or json")
	fs.StringVar(&k.prefix, "b", "cosmosvalconspub", "bech32 prefix, e.g. crocnclconspub (mainnet) or tcrocnclconspub (testnet)")
	fs.StringVar(&k.dir, "c", ".", "directory for tmkms.toml, secrets/ and state/")
	fs.UintVar(&k.cid, "cid", config.DefaultEnclaveCID, "the enclave's vsock CID")
	fs.BoolVar(&k.force, "force", false, "replace existing sealed keys (the old keys are lost)")
	keyTypeFlag(fs, &k.keyType)
}

func (k *keyFlags) check() error {
	if k.region == "" || k.keyID == "" {
		return WithHint(errors.New("-a REGION and -k KMS_KEY_ID are required"), "e.g. tmkms-nitro-helper init -a ap-southeast-1 -k <key id> -p bech32 -b crocnclconspub")
	}
	if len(k.chainIDs) == 0 && !hasValidators(k.dir) {
		return WithHint(errors.New("--chain-id is required: the key is bound to the chains it may sign for when it is sealed"),
			"repeat --chain-id for each chain that shares the key, e.g. a provider chain and its consumer chains")
	}
	if err := pubkey.CheckFormat(k.display, k.prefix); err != nil {
		return err
	}
	_, err := k.anchorFiles()
	return err
}

func runInit(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "init", "-a REGION -k KMS_KEY_ID --chain-id ID [--key-type ed25519|secp256k1] [--nonce HEX] [--ha-* ...] [-p bech32|base64|json] [-b PREFIX] [-c DIR] [--cid N] [--force]",
		"Has the enclave get the consensus key from KMS (a data key released only to the attested enclave) and\n"+
			"generate the SecretConnection identity key, both sealed from inside the enclave: the keys never exist\n"+
			"in plaintext on this host. The consensus key is bound for good to the chains named by --chain-id and,\n"+
			"with --ha-endpoints, to the anchor (the etcd cluster the enclave commits every signature to), whose\n"+
			"credentials the enclave seals first. Writes secrets/, state/, attestation.b64 and (if absent) tmkms.toml,\n"+
			"and prints the public key, the attestation document and the verify-attestation command to run on a\n"+
			"machine you trust before the key is registered on chain.\n\n"+
			"When DIR/tmkms.toml has [[validator]] tables (several chains), init seals each consensus key the tables\n"+
			"name that does not exist yet, bound to the chains whose tables name it, and keeps the keys that do:\n"+
			"adding a chain is a new table and another init, then a restart of the helper.")
	var k keyFlags
	k.register(fs)
	if err := Parse(fs, args, 0); err != nil {
		return err
	}
	if err := k.check(); err != nil {
		return err
	}
	return sealAndReport(ctx, env, &k, nil, nil)
}

func runImport(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "import", "-a REGION -k KMS_KEY_ID --key priv_validator_key.json [--state priv_validator_state.json] [flags]",
		"Seals an existing CometBFT priv_validator_key.json in the enclave, for validators migrating from a\n"+
			"plaintext key, and migrates its double-sign state. The key is plaintext on this host already; delete\n"+
			"the JSON file securely afterwards. A new identity key is generated as with init.\n"+
			"Importing is an administrator's ceremony: the instance role may not call kms:Encrypt (the key policy\n"+
			"denies it, so that a host cannot plant a key), so put the operator's administrator credentials in\n"+
			"[credentials] for this command and remove them afterwards. The sealed key records origin = imported.")
	var k keyFlags
	k.register(fs)
	keyFile := fs.String("key", "", "the priv_validator_key.json to import (required)")
	stateFile := fs.String("state", "", "the validator's priv_validator_state.json (FilePV or tmkms format), strongly advised")
	if err := Parse(fs, args, 0); err != nil {
		return err
	}
	if err := k.check(); err != nil {
		return err
	}
	keyType, seed, err := readPrivValidatorKey(*keyFile)
	if err != nil {
		return err
	}
	// The file says what the key is; --key-type, if given, must agree.
	var typeSet bool
	fs.Visit(func(f *flag.Flag) { typeSet = typeSet || f.Name == "key-type" })
	if typeSet && k.keyType != keyType {
		return fmt.Errorf("%s holds a %s key, not %s (--key-type)", *keyFile, keyType, k.keyType)
	}
	k.keyType = keyType
	return sealAndReport(ctx, env, &k, seed, func(statePath string) error { return importState(*stateFile, statePath) })
}

// readPrivValidatorKey returns the key type and 32-byte seed of a
// CometBFT key file.
func readPrivValidatorKey(path string) (string, []byte, error) {
	if path == "" {
		return "", nil, errors.New("--key priv_validator_key.json is required")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	var f struct {
		PrivKey struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"priv_key"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return "", nil, fmt.Errorf("%s: not a priv_validator_key.json: %w", path, err)
	}
	raw, err := base64.StdEncoding.DecodeString(f.PrivKey.Value)
	if err != nil {
		return "", nil, fmt.Errorf("%s: priv_key.value is not base64: %w", path, err)
	}
	defer clear(raw)
	keyType, seed, err := signer.SeedFromPrivKeyJSON(f.PrivKey.Type, raw)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", path, err)
	}
	return keyType, seed, nil
}

// importState copies a migrating validator's state file into place, where
// the state store converts it on first open, keeping the original.
func importState(from, to string) error {
	if from == "" {
		return nil
	}
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if _, _, err := signstate.ParseJSON(data); err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	if _, err := os.Stat(to); err == nil {
		return fmt.Errorf("%s exists already; not replacing a state file", to)
	}
	return atomicfile.WriteFile(to, data, 0o600)
}

// sealAndReport runs init's common path: config file, credentials, the
// ceremony in the enclave (generating the consensus key, or importing
// seed), state, and the report.
func sealAndReport(ctx context.Context, env *Env, k *keyFlags, seed []byte, state func(string) error) error {
	cfg, err := initConfig(k)
	if err != nil {
		return err
	}
	if len(cfg.Validators) > 0 {
		if seed != nil || k.endpoints != "" {
			return WithHint(errors.New("import and --ha-* work on a single-chain tmkms.toml, and this one has [[validator]] tables"),
				"seal in a directory of its own with a single-chain tmkms.toml, then name the sealed files in the [[validator]] tables")
		}
		return sealChains(ctx, env, k, cfg)
	}
	awsCreds, dial, err := enclaveAccess(ctx, cfg)
	if err != nil {
		return err
	}
	anchorFiles, _ := k.anchorFiles()
	cer := &host.Ceremony{
		Dial:   dial,
		Region: k.region, KMSKeyID: k.keyID, Creds: host.ProtoCredentials(awsCreds),
		ChainIDs: k.chainIDs, Nonce: k.nonce, Anchor: anchorFiles, Import: seed, Force: k.force, KeyType: k.keyType,
	}
	paths := host.Paths{Consensus: cfg.SealedConsensusKeyPath, Identity: cfg.SealedIDKeyPath}
	var table *config.HA
	if anchorFiles != nil {
		// Checked before anything is sealed: a table tmkms.toml would
		// refuse afterwards would leave sealed files and no configuration.
		paths.Anchor = filepath.Join(filepath.Dir(cfg.SealedConsensusKeyPath), "anchor.sealed")
		table = anchorFiles.HA(paths.Anchor, k.instance)
		withTable := *cfg
		withTable.HA = table
		if err := withTable.Validate(); err != nil {
			return fmt.Errorf("the anchor's [ha] table: %w", err)
		}
	}
	sealed, err := cer.Run(ctx, paths)
	switch {
	case errors.Is(err, host.ErrKeyExists):
		return WithHint(err, "pass --force to replace it; the old key is then lost for good")
	case err != nil:
		return WithHint(err, fmt.Sprintf("is the enclave running at CID %d ('tmkms-nitro-helper enclave info'), and vsock-proxy on port 8000?", cfg.EnclaveConfigCID))
	}
	if table != nil {
		if err := config.Edit(filepath.Join(k.dir, "tmkms.toml"), func(c *config.Config) { c.HA = table }); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(cfg.StateFilePath), 0o700); err != nil {
		return err
	}
	if state != nil {
		if err := state(cfg.StateFilePath); err != nil {
			return err
		}
	}
	st, err := signstate.Open(cfg.StateFilePath, signstate.Options{AllowMissing: state == nil})
	if err != nil {
		return err
	}
	st.Close()
	line, _ := pubkey.Format(sealed.Consensus.Key(), k.display, k.prefix)
	fmt.Fprintln(env.Stdout, line)
	origin := sealedkey.Generated
	if seed != nil {
		origin = sealedkey.Imported
	}
	return reportSealed(env, filepath.Join(k.dir, "attestation.b64"), sealed, origin, k.chainIDs, nil, "")
}

// enclaveAccess returns what a ceremony needs to reach the enclave and
// KMS: the AWS credentials to push, and a dialer of the enclave's config
// port.
func enclaveAccess(ctx context.Context, cfg *config.Config) (aws.Credentials, func(context.Context) (net.Conn, error), error) {
	provider, err := host.CredentialsFor(ctx, cfg)
	if err != nil {
		return aws.Credentials{}, nil, err
	}
	creds, err := provider.Retrieve(ctx)
	if err != nil {
		return aws.Credentials{}, nil, WithHint(fmt.Errorf("no AWS credentials: %w", err), "run on the EC2 instance with its instance role, or set [credentials] in tmkms.toml")
	}
	enclave := transport.Port(transport.Addr{Scheme: transport.Vsock, CID: cfg.EnclaveConfigCID}, cfg.EnclaveConfigPort)
	return creds, func(ctx context.Context) (net.Conn, error) { return transport.Dial(ctx, enclave, nil) }, nil
}

// hasValidators reports whether DIR/tmkms.toml exists and has
// [[validator]] tables; errors are left for initConfig to report.
func hasValidators(dir string) bool {
	c, err := config.Load(filepath.Join(dir, "tmkms.toml"))
	return err == nil && len(c.Validators) > 0
}

// sealChains seals, for a tmkms.toml with [[validator]] tables, each
// consensus key that does not exist yet, bound to the chains whose tables
// name it, and the identity key if missing. Existing keys are kept, so a
// chain added to the file gets its key without touching the others'.
func sealChains(ctx context.Context, env *Env, k *keyFlags, cfg *config.Config) error {
	if len(k.chainIDs) > 0 {
		return WithHint(errors.New("--chain-id: the chains come from the [[validator]] tables of tmkms.toml"), "remove --chain-id")
	}
	awsCreds, dial, err := enclaveAccess(ctx, cfg)
	if err != nil {
		return err
	}
	keys, chainsOf := cfg.ConsensusKeys()
	identity := cfg.SealedIDKeyPath
	if _, err := os.Stat(identity); err == nil && !k.force {
		identity = "" // kept
	}
	for _, key := range keys {
		chains := chainsOf[key]
		if _, err := os.Stat(key); err == nil && !k.force {
			if err := keptKeyAllows(key, chains); err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "kept %s (chains %s)\n", key, strings.Join(chains, ", "))
			continue
		}
		cer := &host.Ceremony{
			Dial:   dial,
			Region: cfg.AWSRegion, KMSKeyID: k.keyID, Creds: host.ProtoCredentials(awsCreds),
			ChainIDs: chains, Nonce: k.nonce, Force: k.force, KeyType: k.keyType,
		}
		sealed, err := cer.Run(ctx, host.Paths{Consensus: key, Identity: identity})
		if err != nil {
			return WithHint(err, fmt.Sprintf("is the enclave running at CID %d ('tmkms-nitro-helper enclave info'), and vsock-proxy on port 8000?", cfg.EnclaveConfigCID))
		}
		identity = "" // sealed with the first key
		line, _ := pubkey.Format(sealed.Consensus.Key(), k.display, k.prefix)
		fmt.Fprintf(env.Stdout, "%s (chains %s): %s\n", key, strings.Join(chains, ", "), line)
		if err := reportSealed(env, key+".attestation.b64", sealed, sealedkey.Generated, chains, nil, ""); err != nil {
			return err
		}
	}
	return host.CreateStateFiles(cfg)
}

// keptKeyAllows checks that an existing sealed key may sign for every
// chain whose table names it: a key sealed for other chains cannot be
// widened, only replaced.
func keptKeyAllows(path string, chains []string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	sk, err := sealedkey.Parse(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, c := range chains {
		if !sk.AllowsChain(c) {
			return WithHint(fmt.Errorf("%s is sealed for chains %q, not %q, which a [[validator]] table names it for", path, sk.ChainIDs, c),
				"give that chain a key of its own (another sealed_consensus_key_path); a sealed key's chains are fixed when it is sealed")
		}
	}
	return nil
}

// initConfig loads DIR/tmkms.toml, writing tmkms-light's defaults (with
// the region and KMS key) first if there is none.
func initConfig(k *keyFlags) (*config.Config, error) {
	path := filepath.Join(k.dir, "tmkms.toml")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		c := config.Default(k.region)
		c.KMSKeyID = k.keyID
		c.ChainID = k.chainIDs[0]
		c.EnclaveConfigCID = uint32(k.cid)
		data, err := config.Marshal(c)
		if err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
			return nil, err
		}
	}
	return loadConfig(path, uint32(k.cid))
}
