package enclave

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
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
	wg     sync.WaitGroup // the privval handlers
	// release closes what the handlers use (the state channel, the
	// anchor's connections), once they have stopped.
	release []func()
}

// stop ends the handlers, waits for them, then closes what they used.
func (s *session) stop() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	for _, f := range s.release {
		f()
	}
}

// sameAs reports whether c asks for exactly what the session does, so that
// a restarted host can configure a running enclave again and carry on.
// Every field counts but the credentials, which the host refreshes.
func (s *session) sameAs(c *enclaveproto.Configure) bool {
	return enclaveproto.SameSettings(s.cfg, c)
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
	if e.session != nil {
		return e.reconfigure(c)
	}
	addrs, secret, err := validatorAddrs(c)
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
	defer kc.Close() // KMS is needed only to unseal
	k, err := e.unsealKeys(ctx, kc, c, secret)
	if err != nil {
		return nil, err
	}
	sess := &session{cfg: c, resp: k.configured()}
	s, anchored, err := e.newSigner(ctx, c, k, sess)
	if err != nil {
		sess.stop()
		return nil, err
	}
	e.useLogPort(c.LogPort)
	e.serve(sess, s, dialect, addrs, k.identity)
	e.session = sess
	e.log.Info("configured: signing", "chain_id", c.ChainID, "validators", c.Addresses, "protocol", dialect.String(),
		"consensus_pubkey", fmt.Sprintf("%X", sess.resp.ConsensusPubKey), "state", s.LastState().HRS(), "anchored", anchored)
	return sess.resp, nil
}

// reconfigure answers a host that configures the running session again
// (a restarted helper, or the periodic push): the same settings refresh
// the credentials, other settings are refused.
func (e *Enclave) reconfigure(c *enclaveproto.Configure) (*enclaveproto.Configured, error) {
	s := e.session
	if !s.sameAs(c) {
		return nil, fmt.Errorf("%w: the enclave is already signing for chain %q with other settings; restart the enclave to change them", errBadConfig, s.cfg.ChainID)
	}
	if err := e.creds.Set(awsCreds(c.Credentials)); err != nil {
		return nil, err
	}
	return s.resp, nil
}

// unsealed are a configuration's keys, unsealed through KMS.
type unsealed struct {
	kms       *kms.Client
	consensus signer.Sealable
	sealed    *sealedkey.Key     // the consensus key's file: its chains and anchor
	identity  ed25519.PrivateKey // nil without tcp:// validators
}

// unsealKeys unseals, through kc, the consensus key, checks that it is
// sealed for the configured chain, and unseals the identity key when a
// validator needs it (secret).
func (e *Enclave) unsealKeys(ctx context.Context, kc *kms.Client, c *enclaveproto.Configure, secret bool) (*unsealed, error) {
	key, sealed, err := e.unseal(ctx, kc, c.SealedConsensusKey, sealedkey.Consensus, c.KMSKeyID)
	if err != nil {
		return nil, fmt.Errorf("failed to unseal the consensus key: %w", err)
	}
	if !sealed.AllowsChain(c.ChainID) {
		return nil, fmt.Errorf("%w: the consensus key is sealed for chains %q only, not %q", errBadConfig, sealed.ChainIDs, c.ChainID)
	}
	k := &unsealed{kms: kc, consensus: key, sealed: sealed}
	if secret {
		if k.identity, err = e.identity(ctx, kc, c); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// configured is the answer to Configure: the keys' public halves.
func (k *unsealed) configured() *enclaveproto.Configured {
	resp := &enclaveproto.Configured{ConsensusPubKey: k.consensus.PubKey().Bytes}
	if t := k.consensus.PubKey().Type; t != signer.KeyTypeEd25519 {
		resp.ConsensusKeyType = t // omitted for ed25519, which older helpers expect
	}
	if k.identity != nil {
		resp.IdentityPubKey = k.identity.Public().(ed25519.PublicKey)
	}
	return resp
}

// newSigner connects the state channel and the cluster guard, and returns
// the signer starting from the host's state, or from the anchor's decision
// when that is ahead. What it opens is released when sess stops.
func (e *Enclave) newSigner(ctx context.Context, c *enclaveproto.Configure, k *unsealed, sess *session) (*signer.Signer, bool, error) {
	store := &remoteStore{log: e.log, dial: func(ctx context.Context) (net.Conn, error) {
		return e.p.DialHost(ctx, port(c.StatePort, enclaveproto.DefaultStatePort))
	}}
	sess.release = append(sess.release, store.Close)
	guard, anc, err := e.guard(ctx, k.kms, c, k.consensus, k.sealed, store)
	if err != nil {
		return nil, false, err
	}
	if anc != nil {
		sess.release = append(sess.release, anc.Close)
	}
	last, err := store.Load(ctx)
	if err != nil {
		return nil, false, err
	}
	if chain, err := signstate.ChainID(last); err != nil || chain != "" && chain != c.ChainID {
		return nil, false, fmt.Errorf("%w: the host's state is for chain %q, not %q (%v)", errBadConfig, chain, c.ChainID, err)
	}
	if anc != nil {
		if last, err = e.catchUp(ctx, guard, k.consensus, last); err != nil {
			return nil, false, err
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
	return signer.New(k.consensus, c.ChainID, last, store, opts), anc != nil, nil
}

// useLogPort sends the logs to the configured host port from now on.
func (e *Enclave) useLogPort(p uint32) {
	if p != 0 && p != e.ship.port.Swap(p) {
		e.log.Info("logs now go to the configured host port", "port", p)
	}
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
// signature, and the anchor's client when the guard commits to the anchor
// (which the enclave reaches itself). A key sealed with an anchor gets nothing signed without it: the
// host cannot drop it from the configuration. Without an anchor, [ha]
// commits through the host, which is then trusted with the outcome, and a
// single signer trusts the host's state file across restarts.
func (e *Enclave) guard(ctx context.Context, kc *kms.Client, c *enclaveproto.Configure, key signer.Sealable, sealed *sealedkey.Key, host ha.Store) (*ha.Guard, *anchor.Client, error) {
	instance := c.HAInstance
	if instance == "" {
		instance = "signer"
	}
	var store ha.Store
	var anc *anchor.Client
	switch {
	case sealed.Anchor != "" && len(c.SealedAnchor) == 0:
		return nil, nil, fmt.Errorf("%w: the consensus key is bound to anchor %s, but the configuration has no sealed anchor (sealed_anchor_path in [ha]); nothing will be signed without it",
			errBadConfig, sealed.Anchor[:16])
	case len(c.SealedAnchor) != 0:
		b, fp, err := e.unsealAnchor(ctx, kc, c.SealedAnchor, c.KMSKeyID)
		if err != nil {
			return nil, nil, fmt.Errorf("failed to unseal the anchor: %w", err)
		}
		if sealed.Anchor != "" && fp != sealed.Anchor {
			return nil, nil, fmt.Errorf("%w: the sealed anchor is %s, but the consensus key is bound to anchor %s", errBadConfig, fp[:16], sealed.Anchor[:16])
		}
		cl, err := anchor.New(b, c.ChainID, func(ctx context.Context, i int) (net.Conn, error) {
			return e.p.DialHost(ctx, port(c.AnchorPort, enclaveproto.DefaultAnchorPort)+uint32(i))
		})
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", errBadConfig, err)
		}
		store, anc = cl, cl
		e.log.Info("anchored: every decision is committed to etcd over TLS from the enclave before it is signed",
			"instance", instance, "anchor", fp[:16], "record", cl.Key(), "endpoints", b.Endpoints)
	case c.HAInstance != "":
		store = host
		e.log.Warn("high availability through the host, without an anchor: the host relays decisions to etcd and is trusted with the outcome", "instance", instance)
	default:
		e.log.Warn("no anchor: across enclave restarts the host's state file is trusted; a host that rolls it back can get a conflicting signature")
		return nil, nil, nil
	}
	hk, err := ha.DeriveKey(key.Seed(), c.ChainID)
	if err != nil {
		return nil, nil, err
	}
	return ha.NewGuard(store, hk, instance, e.log), anc, nil
}

// catchUp starts the signer at the anchor's decision when it is ahead of
// the host's state (a rolled-back file, a fresh or second enclave). An
// anchor that cannot be read now is not fatal: every signature is
// committed to it first, so nothing is signed until it answers.
func (e *Enclave) catchUp(ctx context.Context, g *ha.Guard, key signer.Sealable, last signstate.State) (signstate.State, error) {
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

// serve starts one privval handler per node on the signer, owned by sess.
func (e *Enclave) serve(sess *session, s *signer.Signer, dialect privval.Dialect, addrs []transport.Addr, identity ed25519.PrivateKey) {
	c := sess.cfg
	for _, a := range addrs {
		if a.Scheme.Secret() && a.NodeID == "" {
			e.log.Warn("the validator's identity is not pinned (no node_id@ in the address): any peer the host connects us to is accepted", "address", a.String())
		}
	}
	var sctx context.Context
	sctx, sess.cancel = context.WithCancel(e.ctx)
	// One handler per node, all on one signer: one guard, and a request
	// two nodes both send gets the same signature.
	h := privval.NewHandler(s, dialect, e.log)
	for i, a := range addrs {
		sess.wg.Go(func() {
			h.Run(sctx, e.validatorDialer(a, port(c.ValidatorPort, enclaveproto.DefaultValidatorPort)+uint32(i), identity), privval.Options{MaxMessageSize: int(c.MaxMessageSize)})
		})
	}
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

// stopSession stops the session, if any, and waits for it.
func (e *Enclave) stopSession() {
	e.mu.Lock()
	s := e.session
	e.mu.Unlock()
	if s != nil {
		s.stop()
	}
}
