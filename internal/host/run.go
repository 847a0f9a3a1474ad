package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"golang.org/x/sync/errgroup"

	"github.com/tmkms-nitro/tmkms-nitro/internal/config"
	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/ha/etcdstore"
	"github.com/tmkms-nitro/tmkms-nitro/internal/metrics"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
	"github.com/tmkms-nitro/tmkms-nitro/internal/transport"
)

// Options configure Run.
type Options struct {
	Config *config.Config
	// Enclave is the enclave's base address: vsock://CID, or unix:///dir
	// in local mode. Host is where the helper listens: vsock://CID-any, or
	// unix:///dir. Ports come from the configuration.
	Enclave, Host transport.Addr
	// Credentials are pushed to the enclave: static ones from the config,
	// or the instance role's, refreshed by the provider before they expire.
	Credentials aws.CredentialsProvider
	Log         *slog.Logger
	// Configured is called when the enclave has been (re)configured for
	// a chain.
	Configured func(chainID string, c *enclaveproto.Configured)
	// Events, if set, is called for each signature and refusal the
	// enclave reports.
	Events func(enclaveproto.Event)
	// EnclaveTimeout: see Configurator.StartupTimeout.
	EnclaveTimeout time.Duration
}

// ErrAllChainsFailed is returned when every chain of the configuration
// has stopped on an error; the error also wraps each chain's.
var ErrAllChainsFailed = errors.New("no chain is being served")

// Run serves every chain of the configuration until ctx ends. What the
// chains share, the enclave's log channel and the metrics listener, runs
// for all; each chain has its own state file, channels, cluster
// connection and configurator, and a chain that fails (a corrupt or
// missing state file, a refused configuration, a port in use) is logged
// and stops alone while the others go on. Run returns once ctx has ended,
// or with ErrAllChainsFailed once every chain has failed; every goroutine
// it started has stopped by then.
func Run(ctx context.Context, o Options) error {
	chains := o.Config.Chains()
	set := metrics.NewSet(metrics.Options{})
	for _, ch := range chains {
		set.Chain(ch.ChainID) // every chain's series exist from the start
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(runCtx)
	logs, err := transport.Listen(transport.Port(o.Host, o.Config.EnclaveLogPort))
	if err != nil {
		return fmt.Errorf("failed to listen for the enclave's log channel: %w", err)
	}
	g.Go(func() error { return (&LogSink{Log: o.Log, Metrics: set, Events: o.Events}).Serve(gctx, logs) })
	if addr := o.Config.MetricsAddress; addr != "" {
		g.Go(func() error { return set.Serve(gctx, addr, o.Log) })
	}
	// Chains run beside the shared servers, not in their group: a chain's
	// error must not end the others. They all end with gctx.
	errs := make([]error, len(chains))
	var wg sync.WaitGroup
	for i, ch := range chains {
		wg.Go(func() {
			co := o
			if len(chains) > 1 {
				co.Log = o.Log.With("chain_id", ch.ChainID)
			}
			err := runChain(gctx, co, ch, set.Chain(ch.ChainID))
			if gctx.Err() != nil {
				return // stopping: errors are only the way it stopped
			}
			if len(chains) > 1 {
				co.Log.Error("stopped serving this chain; the other chains go on", "err", err)
			}
			errs[i] = fmt.Errorf("chain %s: %w", ch.ChainID, err)
		})
	}
	wg.Wait() // ctx ended, a shared server failed, or every chain failed
	cancel()
	werr := g.Wait()
	switch {
	case ctx.Err() != nil:
		return nil
	case werr != nil && !errors.Is(werr, context.Canceled):
		return werr
	case len(chains) == 1:
		return errors.Unwrap(errs[0]) // the file's only chain: its error, as is
	}
	return fmt.Errorf("%w: %w", ErrAllChainsFailed, errors.Join(errs...))
}

// runChain serves one chain until ctx ends or the chain fails, and
// returns once every goroutine it started has stopped.
func runChain(ctx context.Context, o Options, cfg *config.Config, m *metrics.Metrics) error {
	var validators []transport.Addr
	for _, a := range cfg.Addresses {
		v, err := transport.ParseValidator(a)
		if err != nil {
			return err
		}
		validators = append(validators, v)
	}
	sealed, err := readSealed(cfg)
	if err != nil {
		return err
	}
	state, err := signstate.Open(cfg.StateFilePath, signstate.Options{AllowMissing: cfg.AllowMissingState, Logger: o.Log})
	if err != nil {
		return err
	}
	defer state.Close()
	if chain, err := signstate.ChainID(state.State()); err != nil || chain != "" && chain != cfg.ChainID {
		return fmt.Errorf("the state file %s is for chain %q, the configuration for %q (or unreadable: %v)", cfg.StateFilePath, chain, cfg.ChainID, err)
	}
	o.Log.Info("double-sign state loaded", "chain_id", cfg.ChainID, "path", cfg.StateFilePath, "hrs", state.State().HRS())
	cluster, err := openCluster(cfg, m, o.Log)
	if err != nil {
		return err
	}
	if cluster != nil {
		// Closed once the goroutines below have stopped: the health loop
		// has stopped by then, and does not report etcd down on the way
		// out.
		defer cluster.Close()
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(runCtx)
	s := &servers{o: o, cfg: cfg, validators: validators, sealed: sealed, state: state, cluster: cluster, m: m}
	err = s.start(gctx, g)
	if err != nil {
		cancel() // stops what started before the failure
	}
	// Every goroutine has stopped before the state file and the cluster
	// connection they use are closed. Once ctx has ended, their errors are
	// only the way they stopped.
	if werr := g.Wait(); err == nil && ctx.Err() == nil {
		err = werr
	}
	return err
}

// servers are what one chain serves, once its configuration has been
// read.
type servers struct {
	o          Options
	cfg        *config.Config // the chain's
	validators []transport.Addr
	sealed     sealedKeys
	state      *signstate.File
	cluster    *etcdstore.Store // nil without [ha] through the host
	m          *metrics.Metrics
}

// start runs each of the chain's servers in g: its state and validator
// channels, the anchor relays, the cluster's health loop and the
// configurator. Each returns when ctx ends; the first to fail ends ctx.
func (s *servers) start(ctx context.Context, g *errgroup.Group) error {
	o, cfg, m := s.o, s.cfg, s.m
	serve := func(name string, port uint32, f func(context.Context, net.Listener) error) error {
		ln, err := transport.Listen(transport.Port(o.Host, port))
		if err != nil {
			return fmt.Errorf("failed to listen for the enclave's %s channel: %w", name, err)
		}
		g.Go(func() error { return f(ctx, ln) })
		return nil
	}
	stateServer := &StateServer{File: s.state, Log: o.Log, Metrics: m}
	if s.cluster != nil { // not a nil *Store in the interface
		stateServer.Cluster = s.cluster
		g.Go(func() error { s.cluster.Run(ctx); return nil })
	}
	errs := []error{serve("state", cfg.EnclaveStatePort, stateServer.Serve)}
	// Node i is bridged on the port after node i-1's, as the enclave dials.
	for i, v := range s.validators {
		errs = append(errs, serve("validator", cfg.EnclaveTendermintConn+uint32(i), (&Bridge{Validator: v, Log: o.Log, Metrics: m}).Serve))
	}
	if cfg.HA.Anchored() {
		for i, e := range cfg.HA.Endpoints {
			u, _ := url.Parse(e) // validated with the configuration
			errs = append(errs, serve("anchor relay", cfg.HA.AnchorPort+uint32(i), (&Relay{Target: u.Host, Log: o.Log}).Serve))
		}
		o.Log.Info("anchored: the enclave reaches etcd itself; this helper relays its connections and holds no etcd credential", "endpoints", cfg.HA.Endpoints)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	conf := &Configurator{
		Dial: func(ctx context.Context) (net.Conn, error) {
			return transport.Dial(ctx, transport.Port(o.Enclave, cfg.EnclaveConfigPort), nil)
		},
		Request: func(ctx context.Context) (*enclaveproto.Configure, error) {
			req, expires, err := configureRequest(ctx, cfg, s.sealed, o.Credentials)
			m.CredentialsExpiry(expires)
			return req, err
		},
		Pushed:         m.EnclaveUp,
		StartupTimeout: o.EnclaveTimeout,
		Log:            o.Log,
	}
	if o.Configured != nil {
		conf.Configured = func(c *enclaveproto.Configured) { o.Configured(cfg.ChainID, c) }
	}
	g.Go(func() error { return conf.Run(ctx) })
	return nil
}

// openCluster connects to etcd when the configuration has an [ha] table
// and the enclave does not reach it itself; the caller runs its health loop.
func openCluster(cfg *config.Config, m *metrics.Metrics, log *slog.Logger) (*etcdstore.Store, error) {
	h := cfg.HA
	switch {
	case h.Anchored(): // the enclave reaches etcd itself
		m.EnableAnchor()
		return nil, nil
	case h == nil:
		return nil, nil
	}
	m.EnableHA()
	st, err := etcdstore.Dial(cfg, log.With("ha_instance", h.Instance), m)
	if err != nil {
		return nil, err
	}
	log.Info("high availability: every decision is committed to etcd before it is signed", "instance", h.Instance, "endpoints", h.Endpoints)
	return st, nil
}

type sealedKeys struct{ consensus, identity, anchor []byte }

func readSealed(cfg *config.Config) (sealedKeys, error) {
	var s sealedKeys
	var err error
	if s.consensus, err = os.ReadFile(cfg.SealedConsensusKeyPath); err != nil {
		return s, fmt.Errorf("sealed consensus key: %w", err)
	}
	if cfg.NeedsIdentity() {
		if s.identity, err = os.ReadFile(cfg.SealedIDKeyPath); err != nil {
			return s, fmt.Errorf("sealed identity key (needed for SecretConnection to the validator): %w", err)
		}
	}
	if cfg.HA.Anchored() {
		if s.anchor, err = os.ReadFile(cfg.HA.SealedAnchorPath); err != nil {
			return s, fmt.Errorf("sealed anchor: %w", err)
		}
	}
	return s, nil
}

// configureRequest builds the configuration and says when its credentials
// expire (zero: never).
func configureRequest(ctx context.Context, cfg *config.Config, sealed sealedKeys, creds aws.CredentialsProvider) (*enclaveproto.Configure, time.Time, error) {
	c, err := creds.Retrieve(ctx)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("failed to get AWS credentials: %w", err)
	}
	var expires time.Time
	if c.CanExpire {
		expires = c.Expires
	}
	var instance string
	var anchorPort uint32
	if cfg.HA != nil {
		instance, anchorPort = cfg.HA.Instance, cfg.HA.AnchorPort
	}
	return &enclaveproto.Configure{
		ChainID:            cfg.ChainID,
		Addresses:          cfg.Addresses,
		ProtocolVersion:    cfg.ProtocolVersion,
		MaxMessageSize:     uint32(cfg.MaxMessageSize),
		MaxHeight:          cfg.MaxHeight,
		Region:             cfg.AWSRegion,
		KMSKeyID:           cfg.KMSKeyID,
		SealedConsensusKey: sealed.consensus,
		SealedIdentityKey:  sealed.identity,
		Credentials:        ProtoCredentials(c),
		StatePort:          cfg.EnclaveStatePort,
		ValidatorPort:      cfg.EnclaveTendermintConn,
		LogPort:            cfg.EnclaveLogPort,
		HAInstance:         instance,
		SealedAnchor:       sealed.anchor,
		AnchorPort:         anchorPort,
	}, expires, nil
}

// ProtoCredentials converts SDK credentials for the enclave.
func ProtoCredentials(c aws.Credentials) enclaveproto.Credentials {
	p := enclaveproto.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken}
	if c.CanExpire {
		p.Expiration = c.Expires.UTC().Truncate(time.Second)
	}
	return p
}
