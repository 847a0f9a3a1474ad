package localmode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"

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
	// Addresses override chains' validator addresses in tmkms.toml, by
	// chain id ("" for the only chain).
	Addresses map[string]string
	// MetricsAddress overrides metrics_address in tmkms.toml: host:port
	// of /metrics and /healthz.
	MetricsAddress string
	// Insecure allows a validator address that is not on this machine
	// (tcp to a host other than loopback), with a warning.
	Insecure bool
	Log      *slog.Logger
	// Configured is called each time the enclave is (re)configured for
	// a chain.
	Configured func(chainID string, c *enclaveproto.Configured)
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
	if err := override(cfg, o.Addresses); err != nil {
		return err
	}
	if o.MetricsAddress != "" {
		cfg.MetricsAddress = o.MetricsAddress
	}
	for _, ch := range cfg.Chains() {
		if err := checkLocal(ch.Addresses, o.Insecure, o.Log); err != nil {
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

// override sets the chains' addresses given by chain id ("" for the only
// chain), and validates the result.
func override(cfg *config.Config, addrs map[string]string) error {
	if len(addrs) == 0 {
		return nil
	}
	chains := cfg.Chains()
	for id, a := range addrs {
		switch i := slices.IndexFunc(chains, func(c *config.Config) bool { return c.ChainID == id }); {
		case id == "" && len(chains) == 1:
			chains[0].Addresses = []string{a}
		case id == "":
			return fmt.Errorf("localmode: tmkms.toml serves %d chains: give each address as CHAIN_ID=URL", len(chains))
		case i < 0:
			return fmt.Errorf("localmode: an address for chain %q, which tmkms.toml does not serve", id)
		default:
			chains[i].Addresses = []string{a}
		}
	}
	return cfg.Validate()
}

// ParseAddress reads an --address flag: CHAIN_ID=URL, or a bare URL for
// the only chain (chain id "").
func ParseAddress(s string) (chainID, url string) {
	if id, u, ok := strings.Cut(s, "="); ok && !strings.Contains(id, "://") {
		return id, u
	}
	return "", s
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
