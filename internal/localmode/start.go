package localmode

import (
	"context"
	"errors"
	"fmt"
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
	// MetricsAddress overrides metrics_address in tmkms.toml: host:port
	// of /metrics and /healthz.
	MetricsAddress string
	// Insecure allows a validator address that is not on this machine
	// (tcp to a host other than loopback), with a warning.
	Insecure bool
	Log      *slog.Logger
	// Configured is called each time an enclave is (re)configured.
	Configured func(*enclaveproto.Configured)
	// Events, if set, is called for each signature and refusal the
	// enclave reports.
	Events func(enclaveproto.Event)
	// Spawned, if set, is called with the pid of each enclave process
	// Start starts (not of one already running that it reuses).
	Spawned func(pid int)
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
		cfg.Addresses = []string{o.Address}
		if err := cfg.Validate(); err != nil {
			return err
		}
	}
	if o.MetricsAddress != "" {
		cfg.MetricsAddress = o.MetricsAddress
	}
	if err := checkLocal(cfg.Addresses, o.Insecure, o.Log); err != nil {
		return err
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
	enc, err := StartEnclave(ectx, bin, home, o.Log, o.Spawned)
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
		Enclave:     transport.Addr{Scheme: transport.Unix, Path: filepath.Join(home, enclave.LocalEnclaveSockets)},
		Host:        transport.Addr{Scheme: transport.Unix, Path: filepath.Join(home, enclave.LocalHostSockets)},
		Credentials: creds,
		Log:         o.Log,
		Configured:  o.Configured,
		Events:      o.Events,
	})
}

// Notice is what local mode says about itself when it starts, for the
// local-mode directory home.
func Notice(home string) string {
	if abs, err := filepath.Abs(home); err == nil {
		home = abs
	}
	return fmt.Sprintf("local mode: the key is protected by nothing but file permissions (the local KMS and the software NSM's CA "+
		"are plain files under %s); for development and trials only, never for a validator with stake", home)
}

// ErrRemoteValidator marks a validator address on another machine, which
// local mode refuses unless told it is a trial (StartOptions.Insecure).
var ErrRemoteValidator = errors.New("local mode signs only for a validator on this machine")

// checkLocal refuses (or, if insecure, warns about) every tcp address
// whose host is not loopback. Local mode's key is as safe as the files
// under its home: acceptable for a node on the same machine (whoever owns
// the machine owns that node anyway), not for a validator elsewhere.
// Host names other than localhost are refused unresolved: what they
// resolve to can change.
func checkLocal(addrs []string, insecure bool, log *slog.Logger) error {
	for _, a := range addrs {
		if v, err := transport.ParseAddr(a); err == nil && v.Local() {
			continue
		}
		if !insecure {
			return fmt.Errorf("localmode: validator address %q is not a loopback address: %w", a, ErrRemoteValidator)
		}
		log.Warn("signing for a validator on another machine with a key protected by nothing but file permissions (--insecure)", "address", a)
	}
	return nil
}
