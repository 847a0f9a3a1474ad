package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/localmode"
	"github.com/tmkms-nitro/tmkms-nitro/internal/pubkey"
	"github.com/tmkms-nitro/tmkms-nitro/internal/sealedkey"
)

const enclaveHint = "build it next to this program: go build -o \"$(dirname \"$(command -v tmkms-nitro-helper)\")\" ./cmd/tmkms-nitro-enclave\nor pass --enclave PATH"

func runLocal(ctx context.Context, env *Env, args []string) error {
	return subcommands(ctx, env, args, "local init|replicate|start [flags]\n\nLocal mode runs the enclave as a process, with unix sockets for vsock, a software NSM and a local KMS.",
		map[string]func(context.Context, *Env, []string) error{"init": runLocalInit, "replicate": runLocalReplicate, "start": runLocalStart})
}

func runLocalInit(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "local init", "--home DIR --chain-id ID [--chain-id ID2 ... [--key-per-chain]] [--key-type ed25519|secp256k1] [--ha-endpoints URL,... --ha-ca F --ha-cert F --ha-key F [--ha-user U --ha-password-file F] --instance NAME] [flags]",
		"Creates a local validator signer in DIR: a local KMS whose key policy pins the enclave binary's PCR0,\n"+
			"keys generated inside the (local) enclave and sealed by that KMS, tmkms.toml and state/. Prints the\n"+
			"consensus public key and writes it to DIR/pubkey.json as CometBFT JSON.\n\n"+
			"With several --chain-id, one enclave serves them all: tmkms.toml gets a [[validator]] table per chain,\n"+
			"each with its own state file and node address (--address CHAIN_ID=URL, default unix://DIR/privval-CHAIN_ID.sock),\n"+
			"and DIR/pubkey-CHAIN_ID.json per chain. The chains share one consensus key unless --key-per-chain.\n\n"+
			"With --ha-endpoints the enclave first seals the etcd client credentials (the anchor), binds the key to\n"+
			"it, and tmkms.toml gets an [ha] table naming the sealed anchor: every signature is then committed to\n"+
			"etcd by the enclave itself, over TLS the host only relays. 'local replicate' adds instances to the set.")
	o := localmode.InitOptions{Log: newLogger(env, false)}
	var cf ceremonyFlags
	cf.register(fs)
	keyTypeFlag(fs, &o.KeyType)
	fs.StringVar(&o.Home, "home", "", "directory for the signer's files (required)")
	addressFlag(fs, &o.Addresses, "the validator's priv_validator_laddr, CHAIN_ID=URL with several chains (default unix://DIR/privval.sock)")
	fs.BoolVar(&o.KeyPerChain, "key-per-chain", false, "with several --chain-id, seal a key for each chain instead of one for all")
	fs.StringVar(&o.Enclave, "enclave", "", "path of tmkms-nitro-enclave (default: next to this program, or on $PATH)")
	fs.BoolVar(&o.Force, "force", false, "replace existing keys (the old key is lost)")
	if err := Parse(fs, args, 0); err != nil {
		return err
	}
	if o.Home == "" || len(cf.chainIDs) == 0 {
		fs.Usage()
		return ErrUsage
	}
	var err error
	if o.Anchor, err = cf.anchorFiles(); err != nil {
		return err
	}
	o.ChainIDs, o.Nonce, o.Instance = cf.chainIDs, cf.nonce, cf.instance
	res, err := localmode.Init(ctx, o)
	if err != nil {
		return hintFor(err)
	}
	fmt.Fprintf(env.Stdout, "wrote %s\n", res.ConfigPath)
	for _, id := range o.ChainIDs {
		pub := res.PubKeys[id]
		chain := ""
		if len(o.ChainIDs) > 1 {
			chain = " for " + id
		}
		fmt.Fprintf(env.Stdout, "consensus public key%s: %s\n", chain, pubkey.JSON(pub))
		fmt.Fprintf(env.Stdout, "validator address%s: %s\n", chain, pubkey.Address(pub))
	}
	if o.KeyPerChain && len(o.ChainIDs) > 1 {
		fmt.Fprintf(env.Stdout, "(the attestation below is of the key for %s; each chain's key file carries its own)\n", o.ChainIDs[0])
		return reportSealed(env, filepath.Join(o.Home, "attestation.b64"), res.Sealed, sealedkey.Generated, o.ChainIDs[:1], res.PCR0, localmode.NSMRoot(o.Home))
	}
	return reportSealed(env, filepath.Join(o.Home, "attestation.b64"), res.Sealed, sealedkey.Generated, o.ChainIDs, res.PCR0, localmode.NSMRoot(o.Home))
}

func runLocalReplicate(_ context.Context, env *Env, args []string) error {
	fs := newFlags(env, "local replicate", "--from DIR --home DIR2 [--instance NAME] [--address URL]",
		"Sets up another instance of the signer set in DIR, as a second EC2 host would be: the same sealed keys,\n"+
			"KMS and (if any) sealed anchor, a copy of the state file, its own sockets and processes. Start it with\n"+
			"'local start --home DIR2'.")
	var from, home, instance, address string
	fs.StringVar(&from, "from", "", "an initialized local home (required)")
	fs.StringVar(&home, "home", "", "the new instance's directory; must not exist (required)")
	fs.StringVar(&instance, "instance", "", "the new instance's name in the anchor's records (default: the directory's name)")
	fs.StringVar(&address, "address", "", "the validator's priv_validator_laddr (default unix://DIR2/privval.sock when DIR's is in DIR)")
	if err := Parse(fs, args, 0); err != nil {
		return err
	}
	if from == "" || home == "" {
		fs.Usage()
		return ErrUsage
	}
	if instance == "" {
		instance = filepath.Base(home)
	}
	if err := localmode.Replicate(from, home, localmode.ReplicaOptions{Instance: instance, Address: address}); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "wrote %s\n", filepath.Join(home, "tmkms.toml"))
	return nil
}

func runLocalStart(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "local start", "--home DIR [--address [CHAIN_ID=]URL ...] [--insecure]",
		"Runs the local KMS, the enclave (as a child process, restarted if it dies) and the helper until\n"+
			"SIGINT/SIGTERM. Point the node's priv_validator_laddr at the address in DIR/tmkms.toml.\n\n"+
			"Local mode protects the key with nothing but file permissions, so it signs only for a node on this\n"+
			"machine (a unix socket, or tcp to 127.0.0.0/8, ::1 or localhost) unless --insecure is given.")
	o := localmode.StartOptions{}
	fs.StringVar(&o.Home, "home", "", "directory made by 'local init' (required)")
	addressFlag(fs, &o.Addresses, "the validator's priv_validator_laddr, overriding tmkms.toml; CHAIN_ID=URL when it serves several chains (repeatable)")
	fs.StringVar(&o.Enclave, "enclave", "", "path of tmkms-nitro-enclave (default: next to this program, or on $PATH)")
	fs.BoolVar(&o.Insecure, "insecure", false, "sign for a validator on another machine (tcp to a non-loopback host), for a trial only")
	jsonLogs := fs.Bool("log-json", false, "log JSON instead of text")
	if err := Parse(fs, args, 0); err != nil {
		return err
	}
	if o.Home == "" {
		fs.Usage()
		return ErrUsage
	}
	fmt.Fprintf(env.Stderr, "%s: %s\n", prog, localmode.Notice(o.Home))
	o.Log = newLogger(env, *jsonLogs)
	o.Configured = func(chainID string, c *enclaveproto.Configured) {
		o.Log.Info("the enclave is configured and signing", "chain_id", chainID, "consensus_pubkey", pubkey.JSON(c.ConsensusKey()))
	}
	return hintFor(localmode.Start(ctx, o))
}

// addressFlag registers --address, repeatable: [CHAIN_ID=]URL into dst.
func addressFlag(fs *flag.FlagSet, dst *map[string]string, usage string) {
	fs.Func("address", usage, func(v string) error {
		id, url := localmode.ParseAddress(v)
		if *dst == nil {
			*dst = map[string]string{}
		}
		if _, dup := (*dst)[id]; dup {
			return fmt.Errorf("a second address for chain %q: a node serves one chain, one node per chain here", id)
		}
		(*dst)[id] = url
		return nil
	})
}

// newLogger logs text (or JSON) to stderr at $TMKMS_LOG_LEVEL (debug,
// info, warn, error; info if unset).
func newLogger(env *Env, json bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: logLevel(env.getenv("TMKMS_LOG_LEVEL"))}
	if json {
		return slog.New(slog.NewJSONHandler(env.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(env.Stderr, opts))
}

func logLevel(s string) slog.Level {
	var l slog.Level
	if l.UnmarshalText([]byte(s)) != nil {
		return slog.LevelInfo
	}
	return l
}

// hintFor adds advice to the errors operators meet first.
func hintFor(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, localmode.ErrNoEnclaveBinary):
		return WithHint(err, enclaveHint)
	case errors.Is(err, localmode.ErrRemoteValidator):
		return WithHint(err, "point the node at a unix socket or a loopback address; to sign for a remote node anyway,\n"+
			"as a trial with no stake, pass --insecure")
	}
	return err
}
