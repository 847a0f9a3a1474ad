package enclave

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync"

	"github.com/tmkms-nitro/tmkms-nitro/internal/anchor"
	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/ha"
	"github.com/tmkms-nitro/tmkms-nitro/internal/kms"
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
// Every field counts but the credentials, which the host refreshes.
func (s *session) sameAs(c *enclaveproto.Configure) bool {
	a, b := *s.cfg, *c
	a.Credentials, b.Credentials = enclaveproto.Credentials{}, enclaveproto.Credentials{}
	return reflect.DeepEqual(a, b)
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
	key, sealed, err := e.unseal(ctx, kc, c.SealedConsensusKey, sealedkey.Consensus, c.KMSKeyID)
	if err != nil {
		return nil, fmt.Errorf("failed to unseal the consensus key: %w", err)
	}
	if !sealed.AllowsChain(c.ChainID) {
		return nil, fmt.Errorf("%w: the consensus key is sealed for chains %q only, not %q", errBadConfig, sealed.ChainIDs, c.ChainID)
	}
	resp := &enclaveproto.Configured{ConsensusPubKey: key.PubKey().Bytes}
	var identity ed25519.PrivateKey
	if tcp {
		if identity, err = e.identity(ctx, kc, c); err != nil {
			return nil, err
		}
		resp.IdentityPubKey = identity.Public().(ed25519.PublicKey)
	}
	store := &remoteStore{log: e.log, dial: func(ctx context.Context) (net.Conn, error) {
		return e.p.DialHost(ctx, port(c.StatePort, DefaultStatePort))
	}}
	guard, anchored, err := e.guard(ctx, kc, c, key, sealed, store)
	if err != nil {
		return nil, err
	}
	last, err := store.Load(ctx)
	if err != nil {
		return nil, err
	}
	if chain, err := signstate.ChainID(last); err != nil || chain != "" && chain != c.ChainID {
		return nil, fmt.Errorf("%w: the host's state is for chain %q, not %q (%v)", errBadConfig, chain, c.ChainID, err)
	}
	if anchored {
		if last, err = e.catchUp(ctx, guard, key, last); err != nil {
			return nil, err
		}
	}
	if c.LogPort != 0 && c.LogPort != e.ship.port.Swap(c.LogPort) {
		e.log.Info("logs now go to the configured host port", "port", c.LogPort)
	}
	for _, a := range addrs {
		if a.Scheme.Secret() && a.NodeID == "" {
			e.log.Warn("the validator's identity is not pinned (no node_id@ in the address): any peer the host connects us to is accepted", "address", a.String())
		}
	}
	opts := signer.Options{Log: e.log, MaxHeight: c.MaxHeight, Observe: func(ev signer.Event) {
		if m := eventOf(c.ChainID, ev); m != nil {
			e.ship.enqueue(m)
		}
	}}
	if guard != nil {
		opts.Cluster = guard
	}
	s := signer.New(key, c.ChainID, last, store, opts)
	e.session = e.serve(s, c, resp, dialect, addrs, identity)
	e.log.Info("configured: signing", "chain_id", c.ChainID, "validators", c.Addresses, "protocol", dialect.String(),
		"consensus_pubkey", fmt.Sprintf("%X", resp.ConsensusPubKey), "state", last.HRS(), "anchored", anchored)
	return resp, nil
}

// identity unseals the SecretConnection key of tcp:// validators.
func (e *Enclave) identity(ctx context.Context, kc *kms.Client, c *enclaveproto.Configure) (ed25519.PrivateKey, error) {
	if len(c.SealedIdentityKey) == 0 {
		return nil, fmt.Errorf("%w: a tcp:// validator needs the sealed identity key (sealed_id_key_path)", errBadConfig)
	}
	id, _, err := e.unseal(ctx, kc, c.SealedIdentityKey, sealedkey.Identity, c.KMSKeyID)
	if err != nil {
		return nil, fmt.Errorf("failed to unseal the identity key: %w", err)
	}
	return ed25519.NewKeyFromSeed(id.Seed()), nil
}

// guard returns the cluster guard the signer consults before each
// signature, and whether it is the anchor (which the enclave reaches
// itself). A key sealed with an anchor gets nothing signed without it: the
// host cannot drop it from the configuration. Without an anchor, [ha]
// commits through the host, which is then trusted with the outcome, and a
// single signer trusts the host's state file across restarts.
func (e *Enclave) guard(ctx context.Context, kc *kms.Client, c *enclaveproto.Configure, key *signer.Ed25519, sealed *sealedkey.Key, host ha.Store) (*ha.Guard, bool, error) {
	instance := c.HAInstance
	if instance == "" {
		instance = "signer"
	}
	var store ha.Store
	switch {
	case sealed.Anchor != "" && len(c.SealedAnchor) == 0:
		return nil, false, fmt.Errorf("%w: the consensus key is bound to anchor %s, but the configuration has no sealed anchor (sealed_anchor_path in [ha]); nothing will be signed without it",
			errBadConfig, sealed.Anchor[:16])
	case len(c.SealedAnchor) != 0:
		b, fp, err := e.unsealAnchor(ctx, kc, c.SealedAnchor, c.KMSKeyID)
		if err != nil {
			return nil, false, fmt.Errorf("failed to unseal the anchor: %w", err)
		}
		if sealed.Anchor != "" && fp != sealed.Anchor {
			return nil, false, fmt.Errorf("%w: the sealed anchor is %s, but the consensus key is bound to anchor %s", errBadConfig, fp[:16], sealed.Anchor[:16])
		}
		cl, err := anchor.New(b, c.ChainID, func(ctx context.Context, i int) (net.Conn, error) {
			return e.p.DialHost(ctx, port(c.AnchorPort, DefaultAnchorPort)+uint32(i))
		})
		if err != nil {
			return nil, false, fmt.Errorf("%w: %w", errBadConfig, err)
		}
		store = cl
		e.log.Info("anchored: every decision is committed to etcd over TLS from the enclave before it is signed",
			"instance", instance, "anchor", fp[:16], "record", cl.Key(), "endpoints", b.Endpoints)
	case c.HAInstance != "":
		store = host
		e.log.Warn("high availability through the host, without an anchor: the host relays decisions to etcd and is trusted with the outcome", "instance", instance)
	default:
		e.log.Warn("no anchor: across enclave restarts the host's state file is trusted; a host that rolls it back can get a conflicting signature")
		return nil, false, nil
	}
	hk, err := ha.DeriveKey(key.Seed(), c.ChainID)
	if err != nil {
		return nil, false, err
	}
	return ha.NewGuard(store, hk, instance, e.log), len(c.SealedAnchor) != 0, nil
}

// catchUp starts the signer at the anchor's decision when it is ahead of
// the host's state (a rolled-back file, a fresh or second enclave). An
// anchor that cannot be read now is not fatal: every signature is
// committed to it first, so nothing is signed until it answers.
func (e *Enclave) catchUp(ctx context.Context, g *ha.Guard, key *signer.Ed25519, last signstate.State) (signstate.State, error) {
	won, by, ok, err := g.Latest(ctx)
	switch {
	case errors.Is(err, ha.ErrForged):
		return last, err
	case err != nil:
		e.log.Error("the anchor could not be read: nothing will be signed until it answers", "err", err)
		return last, nil
	case !ok || won.HRS().Compare(last.HRS()) <= 0:
		return last, nil
	}
	e.log.Warn("the anchor holds a later decision than the host's state: starting from the anchor's", "host", last.HRS(), "anchor", won.HRS(), "by", by)
	sig, err := key.Sign(won.SignBytes)
	if err != nil {
		return last, err
	}
	won.Signature = sig
	return won, nil
}

// serve starts one privval handler per node on the signer.
func (e *Enclave) serve(s *signer.Signer, c *enclaveproto.Configure, resp *enclaveproto.Configured, dialect privval.Dialect, addrs []transport.Addr, identity ed25519.PrivateKey) *session {
	sctx, cancel := context.WithCancel(e.ctx)
	sess := &session{cfg: c, resp: resp, cancel: cancel, done: make(chan struct{})}
	// One handler per node, all on one signer: one guard, and a request
	// two nodes both send gets the same signature.
	h := privval.NewHandler(s, dialect, e.log)
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Go(func() {
			h.Run(sctx, e.validatorDialer(a, port(c.ValidatorPort, DefaultValidatorPort)+uint32(i), identity), privval.Options{MaxMessageSize: int(c.MaxMessageSize)})
		})
	}
	go func() { wg.Wait(); close(sess.done) }()
	return sess
}

// validatorAddrs parses the validator addresses and says whether any
// needs the identity key.
func validatorAddrs(c *enclaveproto.Configure) ([]transport.Addr, bool, error) {
	var out []transport.Addr
	secret := false
	for _, s := range c.Addresses {
		a, err := transport.ParseValidator(s)
		if err != nil {
			return nil, false, fmt.Errorf("%w: %w", errBadConfig, err)
		}
		secret = secret || a.Scheme.Secret()
		out = append(out, a)
	}
	return out, secret, nil
}

// validatorDialer reaches the validator through the host's bridge; for
// tcp:// validators the SecretConnection runs from here to the node.
func (e *Enclave) validatorDialer(addr transport.Addr, port uint32, identity ed25519.PrivateKey) privval.Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		c, err := e.p.DialHost(ctx, port)
		if err != nil || !addr.Scheme.Secret() {
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
