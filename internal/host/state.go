package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/ha"
	"github.com/tmkms-nitro/tmkms-nitro/internal/metrics"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// StateServer persists the enclave's double-sign state. The enclave dials
// it, receives the persisted state, and then sends each new state before it
// releases the signature; the server answers only once the state is on
// disk (fdatasync), so no signature can be ahead of the file.
type StateServer struct {
	File    *signstate.File
	Log     *slog.Logger
	Metrics *metrics.Metrics // optional
	// Cluster relays the enclave's decisions to etcd (high availability);
	// nil refuses them.
	Cluster ha.Store
}

// Serve accepts enclave connections until ctx ends. One enclave is served
// at a time; a new connection (an enclave that restarted or redialed)
// replaces the old one.
func (s *StateServer) Serve(ctx context.Context, ln net.Listener) error {
	return serveOne(ctx, ln, s.Log, "state", s.serveConn)
}

func (s *StateServer) serveConn(ctx context.Context, nc net.Conn) error {
	c := enclaveproto.NewConn(nc, enclaveproto.MaxPayload(enclaveproto.TypePersistState))
	defer c.Close()
	st := s.File.State()
	rec, err := signstate.MarshalState(st)
	if err != nil {
		return err
	}
	snap := &enclaveproto.StateSnapshot{Record: rec, Height: st.Height, Round: st.Round, Step: int8(st.Step)}
	if err := c.Send(ctx, snap, 0); err != nil {
		return fmt.Errorf("failed to send the state snapshot: %w", err)
	}
	s.Log.Info("sent the persisted state to the enclave", "hrs", st.HRS())
	for {
		m, id, err := c.Receive(ctx)
		if err != nil {
			return err
		}
		var resp enclaveproto.Message
		switch m := m.(type) {
		case *enclaveproto.PersistState:
			resp = s.persist(ctx, m)
		case *enclaveproto.CommitDecision:
			resp = s.commit(ctx, m)
		default:
			return fmt.Errorf("%w: %s on the state channel", enclaveproto.ErrUnexpectedType, m.Type())
		}
		if err := c.Send(ctx, resp, id); err != nil {
			return err
		}
	}
}

// persist writes one state; the answer is StateAck or an Error that the
// enclave turns into a refusal to sign.
func (s *StateServer) persist(ctx context.Context, p *enclaveproto.PersistState) enclaveproto.Message {
	start := time.Now()
	st, err := signstate.UnmarshalState(p.Record)
	if err == nil {
		err = s.File.Save(ctx, st)
	}
	if s.Metrics != nil {
		s.Metrics.StatePersisted(time.Since(start), err)
	}
	if err != nil {
		code := enclaveproto.CodeInternal
		if signstate.IsRefusal(err) {
			code = enclaveproto.CodeStateRegression
		}
		s.Log.Error("failed to persist the enclave's state; it will not sign", "err", err)
		return &enclaveproto.Error{Code: code, Message: err.Error()}
	}
	return &enclaveproto.StateAck{}
}

// commit relays a decision to the cluster; the answer is CommitResult or
// an Error on which the enclave signs nothing.
func (s *StateServer) commit(ctx context.Context, d *enclaveproto.CommitDecision) enclaveproto.Message {
	if s.Cluster == nil {
		return &enclaveproto.Error{Code: enclaveproto.CodeBadRequest, Message: "high availability is not configured on this host (no [ha] table)"}
	}
	ok, cur, rev, err := s.Cluster.CompareAndSwap(ctx, d.Revision, d.Record)
	if err != nil {
		return &enclaveproto.Error{Code: enclaveproto.CodeClusterDown, Message: err.Error()}
	}
	return &enclaveproto.CommitResult{Committed: ok, Current: cur, Revision: rev}
}

// serveOne accepts connections and serves the newest one, closing the
// previous one: on every channel exactly one enclave is the peer. It
// returns once no connection is being served.
func serveOne(ctx context.Context, ln net.Listener, log *slog.Logger, name string, serve func(context.Context, net.Conn) error) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	var cancelPrev context.CancelFunc = func() {}
	defer func() { cancelPrev() }()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%s channel: accept failed: %w", name, err)
		}
		cancelPrev()
		cctx, cancel := context.WithCancel(ctx)
		cancelPrev = cancel
		wg.Go(func() {
			defer nc.Close()
			context.AfterFunc(cctx, func() { nc.Close() })
			err := serve(cctx, nc)
			switch {
			case cctx.Err() != nil:
			case errors.Is(err, io.EOF):
				log.Info("enclave connection closed", "channel", name)
			case errors.Is(err, enclaveproto.ErrMalformed) || errors.Is(err, enclaveproto.ErrTooLarge) ||
				errors.Is(err, enclaveproto.ErrUnexpectedType) || errors.Is(err, enclaveproto.ErrVersion):
				log.Error("dropped the enclave connection after a bad message", "channel", name, "err", err)
			default:
				log.Warn("dropped the enclave connection", "channel", name, "err", err)
			}
		})
	}
}
