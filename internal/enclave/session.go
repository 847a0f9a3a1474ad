package enclave

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
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

// session is the enclave signing for one chain. It is entered in
// Enclave.sessions, reserving its chain and host ports, before anything
// slow, and removed again if its configuration fails.
type session struct {
	cfg *enclaveproto.Configure
	log *slog.Logger // the enclave's, naming the chain
	// ports are the host ports it dials; guarded by Enclave.mu.
	ports []uint32
	// resp is nil until the session serves; guarded by Enclave.mu.
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

// configure starts signing for c's chain beside the chains already served:
// it unseals the keys, loads the state from the host and serves the
// validators. Configuring a chain again with the same settings only
// refreshes the credentials. The enclave's mutex is not held while KMS,
// the host or the anchor answer, so that one chain's slow configuration
// delays no other's.
func (e *Enclave) configure(ctx context.Context, c *enclaveproto.Configure) (*enclaveproto.Configured, error) {
	addrs, secret, err := validatorAddrs(c)
	if err != nil {
		return nil, err
	}
	dialect, err := privval.ParseDialect(c.ProtocolVersion)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadConfig, err)
	}
	e.mu.Lock()
	if s := e.sessions[c.ChainID]; s != nil {
		defer e.mu.Unlock()
		return e.reconfigure(s, c)
	}
	sess, err := e.reserve(c)
	e.mu.Unlock()
	if err != nil {
		return nil, err
	}
	resp, err := e.start(ctx, sess, addrs, secret, dialect)
	if err != nil {
		// Stopped before the reservation ends: a new configuration of the
		// chain never overlaps what this one opened.
		sess.stop()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		delete(e.sessions, c.ChainID)
		return nil, err
	}
	sess.resp = resp
	return resp, nil
}

// reconfigure answers a host that configures a chain's session again (a
// restarted helper, or the periodic push): the same settings refresh the
// credentials, other settings are refused. Called with e.mu held.
func (e *Enclave) reconfigure(s *session, c *enclaveproto.Configure) (*enclaveproto.Configured, error) {
	switch {
	case s.resp == nil:
		// Not errBadConfig, which ends the host's configurator: once the
		// other configuration has ended, a retry is answered.
		return nil, fmt.Errorf("chain %q is being configured on another connection; try again", c.ChainID)
	case !s.sameAs(c):
		return nil, fmt.Errorf("%w: the enclave is already signing for chain %q with other settings; restart the enclave to change them", errBadConfig, c.ChainID)
	}
	if err := e.creds.Set(awsCreds(c.Credentials)); err != nil {
		return nil, err
	}
	return s.resp, nil
}

// reserve enters a session for c's chain, so that a concurrent Configure
// of the same chain cannot start a second signer for it (a second
// double-sign guard, blind to the first's signatures). Called with e.mu
// held.
func (e *Enclave) reserve(c *enclaveproto.Configure) (*session, error) {
	if len(e.sessions) >= enclaveproto.MaxChains {
		return nil, fmt.Errorf("%w: cannot sign for chain %q: the enclave already signs for %d chains, the most it serves", errBadConfig, c.ChainID, enclaveproto.MaxChains)
	}
	if in := e.logPort(); c.LogPort != 0 && in != 0 && c.LogPort != in {
		return nil, fmt.Errorf("%w: chain %q sends logs to host port %d, but the chains already configured send them to %d: all chains share one log channel", errBadConfig, c.ChainID, c.LogPort, in)
	}
	if total := e.frameMemory() + frameMemory(c); total > maxFrameMemory {
		return nil, fmt.Errorf("%w: chain %q would let the nodes' requests take %d MiB of the enclave's memory with the chains already configured, more than the %d MiB allowed: lower max_message_size or the number of addresses",
			errBadConfig, c.ChainID, total>>20, maxFrameMemory>>20)
	}
	s := &session{cfg: c, log: e.log.With("chain_id", c.ChainID)}
	ports := []uint32{port(c.StatePort, enclaveproto.DefaultStatePort)}
	for i := range c.Addresses {
		ports = append(ports, port(c.ValidatorPort, enclaveproto.DefaultValidatorPort)+uint32(i))
	}
	logs := port(c.LogPort, port(e.logPort(), enclaveproto.DefaultLogPort))
	if slices.Contains(ports, logs) {
		return nil, fmt.Errorf("%w: chain %q would dial host port %d, the log channel's", errBadConfig, c.ChainID, logs)
	}
	if err := e.claim(s, ports); err != nil {
		return nil, err
	}
	e.sessions[c.ChainID] = s
	return s, nil
}

// maxFrameMemory bounds what the nodes' requests may hold at once in the
// enclave, over every chain: each node connection may hold one request of
// up to its chain's max_message_size while it is read. 16 chains of 8
// nodes at the 4 MiB cap would exceed the enclave's memory and stop every
// chain; the default (64 KiB) leaves room for all of them.
const maxFrameMemory = 64 << 20

// frameMemory is what c's nodes' requests may hold at once.
func frameMemory(c *enclaveproto.Configure) int {
	size := int(c.MaxMessageSize)
	if size <= 0 {
		size = privval.DefaultMaxMessageSize
	}
	return min(size, privval.MaxMessageSize) * len(c.Addresses)
}

// frameMemory is what the configured chains' nodes' requests may hold at
// once. Called with e.mu held.
func (e *Enclave) frameMemory() int {
	n := 0
	for _, s := range e.sessions {
		n += frameMemory(s.cfg)
	}
	return n
}

// claim adds ports to the host ports s dials unless another chain's
// session dials one of them: the host would bridge that port to one chain
// only, handing the other chain's signer its state, its nodes or its
// anchor. Called with e.mu held.
func (e *Enclave) claim(s *session, ports []uint32) error {
	for _, o := range e.sessions {
		if o == s {
			continue
		}
		for _, p := range ports {
			if slices.Contains(o.ports, p) {
				return fmt.Errorf("%w: chain %q would dial host port %d, which chain %q uses", errBadConfig, s.cfg.ChainID, p, o.cfg.ChainID)
			}
		}
	}
	s.ports = append(s.ports, ports...)
	return nil
}

// logPort is the host port the configured chains, running or reserved,
// send their logs to (0: no chain is configured). Called with e.mu held.
func (e *Enclave) logPort() uint32 {
	in := uint32(0)
	for _, s := range e.sessions {
		if s.cfg.LogPort != 0 {
			return s.cfg.LogPort
		}
		in = enclaveproto.DefaultLogPort
	}
	return in
}

// start unseals sess's keys, loads its state and serves its validators.
// On an error, sess.stop releases what it opened.
func (e *Enclave) start(ctx context.Context, sess *session, addrs []transport.Addr, secret bool, dialect privval.Dialect) (*enclaveproto.Configured, error) {
	c := sess.cfg
	kc, err := e.kms(c.Region, c.Credentials)
	if err != nil {
		return nil, err
	}
	k, err := e.unsealKeys(ctx, kc, c, secret)
	kc.Close() // KMS is needed only to unseal
	if err != nil {
		return nil, err
	}
	if k.anchor != nil {
		// Only now is the number of etcd members, and so of the anchor's
		// host ports, known.
		var ports []uint32
		for i := range k.anchor.Endpoints {
			ports = append(ports, port(c.AnchorPort, enclaveproto.DefaultAnchorPort)+uint32(i))
		}
		e.mu.Lock()
		err := e.claim(sess, ports)
		e.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	s, err := e.newSigner(ctx, sess, k)
	if err != nil {
		return nil, err
	}
	e.useLogPort(c.LogPort)
	e.serve(sess, s, dialect, addrs, k.identity)
	resp := k.configured()
	sess.log.Info("configured: signing", "validators", c.Addresses, "protocol", dialect.String(),
		"consensus_pubkey", fmt.Sprintf("%X", resp.ConsensusPubKey), "state", s.LastState().HRS(), "anchored", k.anchor != nil)
	return resp, nil
}

// unsealed are a configuration's keys, unsealed through KMS.
type unsealed struct {
	consensus signer.Sealable
	identity  ed25519.PrivateKey // nil without tcp:// validators
	anchor    *anchor.Bundle     // nil without a sealed anchor
	anchorFP  string             // the anchor's fingerprint (hex)
}

// unsealKeys unseals, through kc, the consensus key, checks that it is
// sealed for the configured chain, unseals the identity key when a
// validator needs it (secret), and the anchor the key is bound to. A key
// sealed with an anchor gets nothing signed without it: the host cannot
// drop it from the configuration.
func (e *Enclave) unsealKeys(ctx context.Context, kc *kms.Client, c *enclaveproto.Configure, secret bool) (*unsealed, error) {
	key, sealed, err := e.unseal(ctx, kc, c.SealedConsensusKey, sealedkey.Consensus, c.KMSKeyID)
	if err != nil {
		return nil, fmt.Errorf("failed to unseal the consensus key: %w", err)
	}
	if !sealed.AllowsChain(c.ChainID) {
		return nil, fmt.Errorf("%w: the consensus key is sealed for chains %q only, not %q", errBadConfig, sealed.ChainIDs, c.ChainID)
	}
	k := &unsealed{consensus: key}
	if secret {
		if k.identity, err = e.identity(ctx, kc, c); err != nil {
			return nil, err
		}
	}
	switch {
	case sealed.Anchor != "" && len(c.SealedAnchor) == 0:
		return nil, fmt.Errorf("%w: the consensus key is bound to anchor %s, but the configuration has no sealed anchor (sealed_anchor_path in [ha]); nothing will be signed without it",
			errBadConfig, sealed.Anchor[:16])
	case len(c.SealedAnchor) != 0:
		if k.anchor, k.anchorFP, err = e.unsealAnchor(ctx, kc, c.SealedAnchor, c.KMSKeyID); err != nil {
			return nil, fmt.Errorf("failed to unseal the anchor: %w", err)
		}
		if sealed.Anchor != "" && k.anchorFP != sealed.Anchor {
			return nil, fmt.Errorf("%w: the sealed anchor is %s, but the consensus key is bound to anchor %s", errBadConfig, k.anchorFP[:16], sealed.Anchor[:16])
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
func (e *Enclave) newSigner(ctx context.Context, sess *session, k *unsealed) (*signer.Signer, error) {
	c := sess.cfg
	store := &remoteStore{log: sess.log, chain: c.ChainID, dial: func(ctx context.Context) (net.Conn, error) {
		return e.p.DialHost(ctx, port(c.StatePort, enclaveproto.DefaultStatePort))
	}}
	sess.release = append(sess.release, store.Close)
	guard, anc, err := e.guard(sess, k, store)
	if err != nil {
		return nil, err
	}
	if anc != nil {
		sess.release = append(sess.release, anc.Close)
	}
	last, err := store.Load(ctx)
	if err != nil {
		return nil, err
	}
	if anc != nil {
		if last, err = catchUp(ctx, sess.log, guard, k.consensus, last); err != nil {
			return nil, err
		}
	}
	opts := signer.Options{Log: sess.log, MaxHeight: c.MaxHeight, Observe: func(ev signer.Event) {
		if m := eventOf(c.ChainID, ev); m != nil {
			e.ship.enqueue(m)
		}
	}}
	if guard != nil {
		opts.Cluster = guard
	}
	return signer.New(k.consensus, c.ChainID, last, store, opts), nil
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
// (which the enclave reaches itself). Without an anchor, [ha] commits
// through the host, which is then trusted with the outcome, and a single
// signer trusts the host's state file across restarts.
func (e *Enclave) guard(sess *session, k *unsealed, host ha.Store) (*ha.Guard, *anchor.Client, error) {
	c := sess.cfg
	instance := c.HAInstance
	if instance == "" {
		instance = "signer"
	}
	var store ha.Store
	var anc *anchor.Client
	switch {
	case k.anchor != nil:
		cl, err := anchor.New(k.anchor, c.ChainID, func(ctx context.Context, i int) (net.Conn, error) {
			return e.p.DialHost(ctx, port(c.AnchorPort, enclaveproto.DefaultAnchorPort)+uint32(i))
		})
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", errBadConfig, err)
		}
		store, anc = cl, cl
		sess.log.Info("anchored: every decision is committed to etcd over TLS from the enclave before it is signed",
			"instance", instance, "anchor", k.anchorFP[:16], "record", cl.Key(), "endpoints", k.anchor.Endpoints)
	case c.HAInstance != "":
		store = host
		sess.log.Warn("high availability through the host, without an anchor: the host relays decisions to etcd and is trusted with the outcome", "instance", instance)
	default:
		sess.log.Warn("no anchor: across enclave restarts the host's state file is trusted; a host that rolls it back can get a conflicting signature")
		return nil, nil, nil
	}
	hk, err := ha.DeriveKey(k.consensus.Seed(), c.ChainID)
	if err != nil {
		return nil, nil, err
	}
	return ha.NewGuard(store, hk, instance, sess.log), anc, nil
}

// catchUp starts the signer at the anchor's decision when it is ahead of
// the host's state (a rolled-back file, a fresh or second enclave). An
// anchor that cannot be read now is not fatal: every signature is
// committed to it first, so nothing is signed until it answers.
func catchUp(ctx context.Context, log *slog.Logger, g *ha.Guard, key signer.Sealable, last signstate.State) (signstate.State, error) {
	won, by, ok, err := g.Latest(ctx)
	switch {
	case errors.Is(err, ha.ErrForged):
		return last, err
	case err != nil:
		log.Error("the anchor could not be read: nothing will be signed until it answers", "err", err)
		return last, nil
	case !ok || won.HRS().Compare(last.HRS()) <= 0:
		return last, nil
	}
	log.Warn("the anchor holds a later decision than the host's state: starting from the anchor's", "host", last.HRS(), "anchor", won.HRS(), "by", by)
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
			sess.log.Warn("the validator's identity is not pinned (no node_id@ in the address): any peer the host connects us to is accepted", "address", a.String())
		}
	}
	var sctx context.Context
	sctx, sess.cancel = context.WithCancel(e.ctx)
	// One handler per node, all on one signer: one guard, and a request
	// two nodes both send gets the same signature.
	h := privval.NewHandler(s, dialect, sess.log)
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

// stopSessions stops every session and waits for each. Run calls it once
// the config connections have ended: no configuration is then half-way,
// and none starts after.
func (e *Enclave) stopSessions() {
	e.mu.Lock()
	sessions := slices.Collect(maps.Values(e.sessions))
	e.mu.Unlock()
	for _, s := range sessions {
		s.stop()
	}
}
