package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/config"
	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/host"
	"github.com/tmkms-nitro/tmkms-nitro/internal/pubkey"
	"github.com/tmkms-nitro/tmkms-nitro/internal/transport"
)

// vsockAny is VMADDR_CID_ANY: listen on every CID of the host.
const vsockAny = ^uint32(0)

func runStart(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "start", "-c tmkms.toml [--cid N]",
		"Configures the enclave (sealed keys, AWS credentials, refreshed before they expire), persists its\n"+
			"double-sign state, relays its logs and bridges its connection to the validator, until SIGINT/SIGTERM.")
	path := fs.String("c", "tmkms.toml", "configuration file")
	cid := fs.Uint("cid", 0, "the enclave's vsock CID (default: enclave_config_cid of the configuration)")
	jsonLogs := fs.Bool("log-json", false, "log JSON instead of the configuration's log_format")
	wait := fs.Duration("enclave-timeout", 30*time.Second, "give up when no enclave answers this long after start")
	if err := Parse(fs, args, 0); err != nil {
		return err
	}
	cfg, err := loadConfig(*path, uint32(*cid))
	if err != nil {
		return err
	}
	log := newLogger(env, *jsonLogs || cfg.LogFormat == "json")
	creds, err := host.CredentialsFor(ctx, cfg)
	if err != nil {
		return err
	}
	for _, ch := range cfg.Chains() {
		log.Info("starting", "config", *path, "enclave_cid", cfg.EnclaveConfigCID, "chain_id", ch.ChainID, "validators", ch.Addresses)
	}
	err = host.Run(ctx, host.Options{
		Config:         cfg,
		Enclave:        transport.Addr{Scheme: transport.Vsock, CID: cfg.EnclaveConfigCID},
		Host:           transport.Addr{Scheme: transport.Vsock, CID: vsockAny},
		Credentials:    creds,
		Log:            log,
		EnclaveTimeout: *wait,
		Configured: func(chainID string, c *enclaveproto.Configured) {
			log.Info("the enclave is configured and signing", "chain_id", chainID, "consensus_pubkey", pubkey.JSON(c.ConsensusKey()))
		},
	})
	if errors.Is(err, host.ErrNotConfigured) {
		return WithHint(err, "the enclave reaches KMS through vsock-proxy on port 8000: is it running ('vsock-proxy 8000 kms."+cfg.AWSRegion+".amazonaws.com 443'), with the KMS endpoint in its allowlist?")
	}
	if errors.Is(err, host.ErrNoEnclave) {
		return WithHint(err, fmt.Sprintf("is the enclave running with CID %d? 'tmkms-nitro-helper enclave info' lists enclaves; 'launch-all' starts one", cfg.EnclaveConfigCID))
	}
	return err
}

func loadConfig(path string, cid uint32) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, WithHint(err, "see the tmkms.toml reference in docs/operations.md; 'tmkms-nitro-helper init' writes a default one")
	}
	if cid != 0 {
		cfg.EnclaveConfigCID = cid
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("--cid: %w", err)
		}
	}
	return cfg, nil
}
