package enclave

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"

	"github.com/cometbft/cometbft/crypto"
	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/ha"
	"github.com/tmkms-nitro/tmkms-nitro/internal/privval"
	"github.com/tmkms-nitro/tmkms-nitro/internal/sealedkey"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
	"github.com/tmkms-nitro/tmkms-nitro/internal/transport"
)

var errBadConfig = errors.New("bad configuration")

// session is the enclave signing for one chain.
type session struct {
	cfg    *enclaveproto.Configure
	resp   *enclaveproto.Configured
	cancel context.CancelFunc
	done   chan struct{}
}

// sameAs reports whether c asks for exactly what the session does, so that
// a restarted host can configure a running enclave again and carry on.
func (s *session) sameAs(c *enclaveproto.Configure) bool {
	a, b := s.cfg, c
	return a.ChainID == b.ChainID && a.Address == b.Address && slices.Equal(a.Addresses, b.Addresses) && a.ProtocolVersion == b.ProtocolVersion &&
		a.MaxMessageSize == b.MaxMessageSize && a.MaxHeight == b.MaxHeight && a.Region == b.Region && a.KMSKeyID == b.KMSKeyID &&
		bytes.Equal(a.SealedConsensusKey, b.SealedConsensusKey) && bytes.Equal(a.SealedIdentityKey, b.SealedIdentityKey) &&
		a.StatePort == b.StatePort && a.ValidatorPort == b.ValidatorPort && a.LogPort == b.LogPort && a.HAInstance == b.HAInstance
}

func port(p, def uint32) uint32 {
	if p == 0 {
		return def
	}
	return p
}

// configure unseals the keys, loads the state from the host and starts
// serving the validator. Configuring a running enclave again with the same
// settings only refreshes its credentials.
func (e *Enclave) configure(ctx context.Context, c *enclaveproto.Configure) (*enclaveproto.Configured, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s := e.session; s != nil {
		if !s.sameAs(c) {
			return nil, fmt.Errorf("%w: the enclave is already signing for chain %q with other settings; restart the enclave to change them", errBadConfig, s.cfg.ChainID)
		}
		if err := e.creds.Set(awsCreds(c.Credentials)); err != nil {
			return nil, err
		}
		return s.resp, nil
	}
	addrs, tcp, err := validatorAddrs(c)
	if err != nil {
		return nil, err
	}
	dialect, err := privval.ParseDialect(c.ProtocolVersion)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadConfig, err)
	}
	kc, err := e.kms(c.Region, c.Credentials)
	if err != nil {
		return nil, err
	}
	key, err := e.unseal(ctx, kc, c.SealedConsensusKey, sealedkey.Consensus, c.KMSKeyID)
	if err != nil {
		return nil, fmt.Errorf("failed to unseal the consensus key: %w", err)
	}
	resp := &enclaveproto.Configured{ConsensusPubKey: key.PubKey().Bytes()}
	var identity crypto.PrivKey
	if tcp {
		if len(c.SealedIdentityKey) == 0 {
			return nil, fmt.Errorf("%w: a tcp:// validator needs the sealed identity key (sealed_id_key_path)", errBadConfig)
		}
		id, err := e.unseal(ctx, kc, c.SealedIdentityKey, sealedkey.Identity, c.KMSKeyID)
		if err != nil {
			return nil, fmt.Errorf("failed to unseal the identity key: %w", err)
		}
		identity = cmted25519.PrivKey(ed25519.NewKeyFromSeed(id.Seed()))
		resp.IdentityPubKey = identity.PubKey().Bytes()
	}
	store := &remoteStore{log: e.log, dial: func(ctx context.Context) (net.Conn, error) {
		return e.p.DialHost(ctx, port(c.StatePort, DefaultStatePort))
	}}
	last, err := store.Load(ctx)
	if err != nil {
		return nil, err
	}
	if chain, err := signstate.ChainID(last); err != nil || chain != "" && chain != c.ChainID {
		return nil, fmt.Errorf("%w: the host's state is for chain %q, not %q (%v)", errBadConfig, chain, c.ChainID, err)
	}
	if c.LogPort != 0 && c.LogPort != e.ship.port.Swap(c.LogPort) {
		e.log.Info("logs now go to the configured host port", "port", c.LogPort)
	}
	for _, a := range addrs {
		if a.Scheme == "tcp" && a.NodeID == "" {
			e.log.Warn("the validator's identity is not pinned (no node_id@ in the address): any peer the host connects us to is accepted", "address", a.String())
		}
	}
	opts := signer.Options{Log: e.log, MaxHeight: c.MaxHeight}
	if c.HAInstance != "" {
		hk, err := ha.DeriveKey(key.Seed(), c.ChainID)
		if err != nil {
			return nil, err
		}
		opts.Cluster = ha.NewGuard(store, hk, c.HAInstance, e.log)
		e.log.Info("high availability: every decision is committed to the cluster before it is signed", "instance", c.HAInstance)
	}
	s := signer.New(key, c.ChainID, last, store, opts)
	sctx, cancel := context.WithCancel(e.ctx)
	sess := &session{cfg: c, resp: resp, cancel: cancel, done: make(chan struct{})}
	// One handler per node, all on one signer: one guard, and a request
	// two nodes both send gets the same signature.
	h := privval.NewHandler(s, dialect, e.log)
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.Run(sctx, e.validatorDialer(a, port(c.ValidatorPort, DefaultValidatorPort)+uint32(i), identity), privval.Options{MaxMessageSize: int(c.MaxMessageSize)})
		}()
	}
	go func() { wg.Wait(); close(sess.done) }()
	e.session = sess
	e.log.Info("configured: signing", "chain_id", c.ChainID, "validator", c.Address, "protocol", dialect.String(),
		"consensus_pubkey", fmt.Sprintf("%X", resp.ConsensusPubKey), "state", last.HRS())
	return resp, nil
}

// validatorAddrs parses the validator addresses and says whether any is
// tcp:// (which needs the identity key).
func validatorAddrs(c *enclaveproto.Configure) ([]transport.Addr, bool, error) {
	list := c.Addresses
	if len(list) == 0 {
		list = []string{c.Address}
	}
	var out []transport.Addr
	tcp := false
	for _, s := range list {
		a, err := transport.ParseAddr(s)
		if err != nil || (a.Scheme != "unix" && a.Scheme != "tcp") {
			return nil, false, fmt.Errorf("%w: validator address %q must be unix:// or tcp://", errBadConfig, s)
		}
		tcp = tcp || a.Scheme == "tcp"
		out = append(out, a)
	}
	return out, tcp, nil
}

// validatorDialer reaches the validator through the host's bridge; for
// tcp:// validators the SecretConnection runs from here to the node.
func (e *Enclave) validatorDialer(addr transport.Addr, port uint32, identity crypto.PrivKey) privval.Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		c, err := e.p.DialHost(ctx, port)
		if err != nil || addr.Scheme != "tcp" {
			return c, err
		}
		return transport.Secure(ctx, c, identity, addr.NodeID)
	}
}

func (e *Enclave) stopSession() {
	e.mu.Lock()
	s := e.session
	e.mu.Unlock()
	if s != nil {
		s.cancel()
		<-s.done
	}
}
