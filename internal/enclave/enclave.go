// Package enclave is the application inside the Nitro Enclave
// (tmkms-nitro-enclave): it answers the host's configuration requests,
// generates and seals keys, and signs for up to enclaveproto.MaxChains
// chains, each configured on its own: it unseals the chain's validator key
// through KMS with a Recipient attestation, and serves the chain's
// privval requests with the chain's own double-sign guard, releasing a
// signature only after the host has durably persisted the state that
// records it. No two sessions ever sign for one chain.
//
// It trusts nothing from the host that it can check: keys are checked
// against the public key bound into their KMS encryption context, the KMS
// key can be pinned, TLS to KMS terminates here against roots the image
// carries, and host-provided state never lowers what the enclave knows.
// Secrets never enter a log record.
package enclave

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/kms"
	"github.com/tmkms-nitro/tmkms-nitro/internal/nsm"
)

// Default host ports (tmkms-light's, plus the log channel).
const ()

// Platform is what the enclave is given by the machine it runs on: vsock
// and /dev/nsm on Nitro, unix sockets and a software NSM in local mode.
type Platform struct {
	// Listen accepts the host's configuration connections.
	Listen net.Listener
	// DialHost connects to a port on the host.
	DialHost func(ctx context.Context, port uint32) (net.Conn, error)
	NSM      nsm.NSM
	// KMSDial connects to KMS (through the host's proxy); KMSRoots verify
	// it (nil: the Amazon roots built into the binary); KMSEndpoint names
	// it ("": kms.<region>.amazonaws.com).
	KMSDial     func(ctx context.Context, network, addr string) (net.Conn, error)
	KMSRoots    *x509.CertPool
	KMSEndpoint string
	// Log is the local log (the console); records are also sent to the host.
	Log *slog.Logger
}

// Enclave is the running application.
type Enclave struct {
	p     Platform
	log   *slog.Logger
	creds *kms.Credentials
	ctx   context.Context // Run's: sessions outlive the config connection
	ship  *shipper

	mu       sync.Mutex
	sessions map[string]*session // by chain id, running or being configured
}

// maxConfigConns bounds the host's concurrent configuration connections.
// The helper holds one per chain and a CLI command (a key generation) may
// open another, with room for a helper's reconnection; each costs the
// enclave a goroutine and a frame's buffer, so a host opening hundreds
// would exhaust the enclave's memory, and an enclave restarted by the
// kernel is itself something an attacker can use.
const maxConfigConns = enclaveproto.MaxChains + 4

// refusalLogInterval is the least time between two records about
// connections refused over maxConfigConns, so a flood does not flood the
// log (nor the queue to the host).
const refusalLogInterval = time.Minute

// Run serves until ctx ends. Every goroutine it starts has stopped by the
// time it returns.
func Run(ctx context.Context, p Platform) error {
	ctx, cancel := context.WithCancel(ctx)
	ship := newShipper(p.DialHost, enclaveproto.DefaultLogPort)
	e := &Enclave{p: p, creds: kms.NewCredentials(), ctx: ctx, ship: ship,
		log: slog.New(&handler{local: p.Log.Handler(), ship: ship}), sessions: map[string]*session{}}
	var wg sync.WaitGroup
	// Unwound in reverse: end everything, wait for the config connections
	// and the shipper, then for the sessions Configures started.
	defer e.stopSessions()
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { ship.run(ctx) })
	e.log.Info("enclave started, waiting for the host's configuration", "listen", p.Listen.Addr().String())
	stop := context.AfterFunc(ctx, func() { p.Listen.Close() })
	defer stop()
	slots := make(chan struct{}, maxConfigConns)
	var refused refusals
	for {
		nc, err := p.Listen.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("enclave: config channel: %w", err)
		}
		select {
		case slots <- struct{}{}:
		default:
			nc.Close()
			if n := refused.note(time.Now()); n > 0 {
				e.log.Warn("refused config connections over the limit; more refusals are counted and reported at most once per interval",
					"refused", n, "limit", maxConfigConns, "interval", refusalLogInterval)
			}
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			e.serveConfig(ctx, nc)
		})
	}
}

// refusals counts connections refused over maxConfigConns and says when
// to report them: the first at once, then at most once per
// refusalLogInterval.
type refusals struct {
	n    int       // refused since the last report
	last time.Time // of the last report
}

// note counts one refusal at now and returns how many to report (0: not yet).
func (r *refusals) note(now time.Time) int {
	r.n++
	if !r.last.IsZero() && now.Sub(r.last) < refusalLogInterval {
		return 0
	}
	n := r.n
	r.n, r.last = 0, now
	return n
}

// configIdle drops a configuration connection on which nothing arrives
// (the helper pushes its configuration every second). A frame once begun
// must be complete within enclaveproto.FrameTimeout, so a connection
// stalled mid-frame holds its slot for seconds, not for configIdle.
const configIdle = 2 * time.Minute

func (e *Enclave) serveConfig(ctx context.Context, nc net.Conn) {
	c := enclaveproto.NewConn(nc, enclaveproto.MaxPayload(enclaveproto.TypeConfigure))
	defer c.Close()
	// Receive and Send already end with ctx; closing as well tells the
	// host at once, even while handle still waits on KMS.
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, configIdle)
		m, id, err := c.Receive(rctx)
		cancel()
		if err != nil {
			switch {
			case errors.Is(err, io.EOF) || ctx.Err() != nil:
			case errors.Is(err, enclaveproto.ErrMalformed) || errors.Is(err, enclaveproto.ErrTooLarge) ||
				errors.Is(err, enclaveproto.ErrVersion) || errors.Is(err, enclaveproto.ErrUnexpectedType):
				e.log.Error("dropped a config connection after a bad message", "err", err)
			default:
				e.log.Warn("config connection closed", "err", err)
			}
			return
		}
		resp := e.handle(ctx, m)
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = c.Send(sctx, resp, id)
		cancel()
		if err != nil {
			return
		}
	}
}

// handle answers one configuration request.
func (e *Enclave) handle(ctx context.Context, m enclaveproto.Message) enclaveproto.Message {
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	switch m := m.(type) {
	case *enclaveproto.GenerateKey:
		return answer(e.seal(rctx, m.Region, m.KMSKeyID, m.Purpose, m.Key(), m.Credentials, nil, m.Binding))
	case *enclaveproto.ImportKey:
		return answer(e.seal(rctx, m.Region, m.KMSKeyID, m.Purpose, m.Key(), m.Credentials, []byte(m.Seed), m.Binding))
	case *enclaveproto.SealAnchor:
		return answer(e.sealAnchor(rctx, m))
	case *enclaveproto.Configure:
		return answer(e.configure(rctx, m))
	}
	return &enclaveproto.Error{Code: enclaveproto.CodeBadRequest, Message: fmt.Sprintf("%s is not a configuration request", m.Type())}
}

func answer[T enclaveproto.Message](m T, err error) enclaveproto.Message {
	if err != nil {
		return errorAnswer(err)
	}
	return m
}

// errorAnswer turns an error into the host's Error message. Messages carry
// no secrets: errors in this program never include key material.
func errorAnswer(err error) *enclaveproto.Error {
	code := enclaveproto.CodeInternal
	switch {
	case errors.Is(err, kms.ErrAccessDenied):
		code = enclaveproto.CodeKMSAccessDenied
	case errors.Is(err, errBadConfig):
		code = enclaveproto.CodeBadConfig
	default:
		var ke *kms.Error
		if errors.As(err, &ke) {
			code = enclaveproto.CodeKMS
		}
	}
	return &enclaveproto.Error{Code: code, Message: err.Error()}
}
