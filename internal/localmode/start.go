package localmode

import (
	"context"
	"log/slog"
	"path/filepath"

	"github.com/tmkms-nitro/tmkms-nitro/internal/config"
	"github.com/tmkms-nitro/tmkms-nitro/internal/enclave"
	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/host"
	"github.com/tmkms-nitro/tmkms-nitro/internal/transport"
)

// StartOptions configure Start.
type StartOptions struct {
	Home    string
	Enclave string // the enclave program; "" finds it
	Address string // overrides the validator address in tmkms.toml
	Log     *slog.Logger
	// Configured is called each time an enclave is (re)configured.
	Configured func(*enclaveproto.Configured)
}

// Start runs the local KMS, the enclave (reusing one already running for
// this home) and the helper's start until ctx ends or the enclave refuses
// its configuration.
func Start(ctx context.Context, o StartOptions) error {
	home, err := filepath.Abs(o.Home)
	if err != nil {
		return err
	}
	cfg, err := config.Load(filepath.Join(home, "tmkms.toml"))
	if err != nil {
		return err
	}
	if o.Address != "" {
		cfg.Address, cfg.Addresses = o.Address, nil
		if err := cfg.Validate(); err != nil {
			return err
		}
	}
	bin, err := FindEnclave(o.Enclave)
	if err != nil {
		return err
	}
	kms, err := StartKMS(home, o.Log)
	if err != nil {
		return err
	}
	defer kms.Close()
	ectx, stop := context.WithCancel(ctx)
	enc, err := StartEnclave(ectx, bin, home, o.Log)
	if err != nil {
		stop()
		return err
	}
	defer func() { stop(); enc.Wait() }()
	creds, err := host.CredentialsFor(ctx, cfg)
	if err != nil {
		return err
	}
	return host.Run(ctx, host.Options{
		Config:      cfg,
		Enclave:     transport.Addr{Scheme: "unix", Path: filepath.Join(home, enclave.LocalEnclaveSockets)},
		Host:        transport.Addr{Scheme: "unix", Path: filepath.Join(home, enclave.LocalHostSockets)},
		Credentials: creds,
		Log:         o.Log,
		Configured:  o.Configured,
	})
}
