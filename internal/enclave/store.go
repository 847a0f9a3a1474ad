package enclave

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// roundTrip bounds one request on the state channel (a state to persist,
// a decision to commit): the node's own budget for a signature is 5 s, and
// a late signature is a missed vote anyway.
const roundTrip = 2 * time.Second

// remoteStore persists the signer's state on the host: each Save sends the
// new state on the state channel and returns only when the host has
// acknowledged it as durably written. A broken channel is redialed on the
// next Save (the helper may have restarted), and the host's copy is brought
// up to what the enclave knows before anything new is persisted.
type remoteStore struct {
	dial  func(ctx context.Context) (net.Conn, error)
	log   *slog.Logger
	chain string // the only chain a snapshot may be for ("": any, in tests)

	mu    sync.Mutex
	conn  *enclaveproto.Conn
	known signstate.State // the highest state the host acknowledged or sent
}

// Load connects and returns the host's persisted state, which the signer
// starts from.
func (r *remoteStore) Load(ctx context.Context) (signstate.State, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	snap, err := r.connect(ctx)
	if err != nil {
		return signstate.State{}, err
	}
	r.known = snap
	return snap, nil
}

// connect dials the host and reads its snapshot.
func (r *remoteStore) connect(ctx context.Context) (signstate.State, error) {
	nc, err := r.dial(ctx)
	if err != nil {
		return signstate.State{}, fmt.Errorf("failed to reach the host's state channel: %w", err)
	}
	c := enclaveproto.NewConn(nc, enclaveproto.MaxPayload(enclaveproto.TypeStateSnapshot))
	m, _, err := c.Receive(ctx)
	if err != nil {
		c.Close()
		return signstate.State{}, fmt.Errorf("no state snapshot from the host: %w", err)
	}
	snap, ok := m.(*enclaveproto.StateSnapshot)
	if !ok || snap.Missing {
		c.Close()
		return signstate.State{}, errors.New("the host has no state to give: refusing to sign from an unknown state")
	}
	st, err := signstate.UnmarshalState(snap.Record)
	if err != nil {
		c.Close()
		return signstate.State{}, fmt.Errorf("the host's state snapshot is invalid: %w", err)
	}
	// Checked on every connection, not only the first: a snapshot of
	// another chain, taken as this chain's known state, would be written
	// back into this chain's file.
	if chain, err := signstate.ChainID(st); r.chain != "" && (err != nil || chain != "" && chain != r.chain) {
		c.Close()
		return signstate.State{}, fmt.Errorf("%w: the host's state is for chain %q, not %q (%v)", errBadConfig, chain, r.chain, err)
	}
	r.conn = c
	return st, nil
}

// Close closes the state channel; a later Save redials it.
func (r *remoteStore) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn != nil {
		r.conn.Close()
		r.conn = nil
	}
}

// Save implements signer.Store.
func (r *remoteStore) Save(ctx context.Context, st signstate.State) error {
	req, err := persistRequest(st)
	if err != nil {
		return err
	}
	if err := acked(r.call(ctx, req)); err != nil {
		return err
	}
	r.mu.Lock()
	r.known = st
	r.mu.Unlock()
	return nil
}

// CompareAndSwap implements ha.Store through the host, which relays it to
// etcd. The host is not trusted with the outcome's content: the guard
// authenticates the records it returns.
func (r *remoteStore) CompareAndSwap(ctx context.Context, rev int64, record []byte) (bool, []byte, int64, error) {
	resp, err := r.call(ctx, &enclaveproto.CommitDecision{Record: record, Revision: rev})
	var res *enclaveproto.CommitResult
	if err == nil {
		res, err = enclaveproto.Expect[*enclaveproto.CommitResult](resp)
	}
	if err != nil {
		return false, nil, 0, fmt.Errorf("the host did not commit the decision: %w", err)
	}
	return res.Committed, res.Current, res.Revision, nil
}

// call sends one request on the state channel and returns the host's
// answer; an Error answer is returned as the error.
func (r *remoteStore) call(ctx context.Context, m enclaveproto.Message) (enclaveproto.Message, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, roundTrip)
	defer cancel()
	// A connection that served before may be stale (the helper restarted):
	// one redial within the same deadline. Both requests are idempotent:
	// the host accepts an equal state, and a decision already committed
	// fails its compare-and-swap and comes back as the current record.
	for attempt := 0; ; attempt++ {
		fresh := r.conn == nil
		if fresh {
			if err := r.reconnect(ctx); err != nil {
				return nil, err
			}
		}
		resp, err := r.conn.Call(ctx, m)
		var refused *enclaveproto.Error
		if err == nil || errors.As(err, &refused) {
			return resp, err // the host answered: the channel works
		}
		r.conn.Close()
		r.conn = nil
		if fresh || attempt > 0 || ctx.Err() != nil {
			return nil, err
		}
		r.log.Warn("state channel broken, redialing the host", "err", err)
	}
}

// reconnect redials and, when the host's copy is behind what the enclave
// already knows (a helper restarted from an older file), persists the
// enclave's state first: the host can never lower the enclave's state.
func (r *remoteStore) reconnect(ctx context.Context) error {
	snap, err := r.connect(ctx)
	if err != nil {
		return err
	}
	switch c := snap.HRS().Compare(r.known.HRS()); {
	case c < 0:
		r.log.Warn("the host's state is behind the enclave's; persisting the enclave's", "host", snap.HRS(), "enclave", r.known.HRS())
		if err := r.send(ctx, r.known); err != nil {
			r.conn.Close()
			r.conn = nil
			return err
		}
	case c > 0:
		r.log.Warn("the host's state is ahead of the enclave's; keeping the higher one", "host", snap.HRS(), "enclave", r.known.HRS())
		r.known = snap
	}
	return nil
}

func (r *remoteStore) send(ctx context.Context, st signstate.State) error {
	req, err := persistRequest(st)
	if err != nil {
		return err
	}
	return acked(r.conn.Call(ctx, req))
}

func persistRequest(st signstate.State) (*enclaveproto.PersistState, error) {
	rec, err := signstate.MarshalState(st)
	if err != nil {
		return nil, err
	}
	return &enclaveproto.PersistState{Record: rec, Height: st.Height, Round: st.Round, Step: int8(st.Step)}, nil
}

// acked turns the host's answer to PersistState into an error.
func acked(resp enclaveproto.Message, err error) error {
	if err == nil {
		_, err = enclaveproto.Expect[*enclaveproto.StateAck](resp)
	}
	if err != nil {
		return fmt.Errorf("the host did not persist the state: %w", err)
	}
	return nil
}
