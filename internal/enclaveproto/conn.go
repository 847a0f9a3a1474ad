package enclaveproto

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Conn reads and writes frames on one connection, bounding each message
// with its context: the context's deadline becomes the connection's
// deadline for that message, and cancelling the context interrupts it.
//
// Send may run concurrently with Receive, and Sends with each other (each
// frame is one write). Call serializes whole exchanges; do not mix it with
// Receive on the same Conn.
type Conn struct {
	nc     net.Conn
	limit  int
	sendMu sync.Mutex
	recvMu sync.Mutex
	callMu sync.Mutex
	lastID atomic.Uint64
}

// NewConn wraps nc. limit is the channel's payload limit (MaxConfigPayload,
// MaxStatePayload or MaxLogPayload).
func NewConn(nc net.Conn, limit int) *Conn {
	return &Conn{nc: nc, limit: limit}
}

// Send writes m with request id id.
func (c *Conn) Send(ctx context.Context, m Message, id uint64) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return withDeadline(ctx, c.nc.SetWriteDeadline, func() error {
		return Write(c.nc, m, id)
	})
}

// FrameTimeout bounds the time from a frame's first byte to its last.
// Frames are small and written at once, so a peer that trickles one (a
// slow loris) is cut off rather than allowed to hold the channel.
const FrameTimeout = 5 * time.Second

// Receive reads the next message and its request id. Waiting for a frame
// is bounded by ctx; reading it, once begun, also by FrameTimeout.
func (c *Conn) Receive(ctx context.Context) (Message, uint64, error) {
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	var (
		m  Message
		id uint64
	)
	deadline, _ := ctx.Deadline()
	err := withDeadline(ctx, c.nc.SetReadDeadline, func() (err error) {
		m, id, err = Read(&frameReader{c: c.nc, deadline: deadline}, c.limit)
		return err
	})
	return m, id, err
}

// frameReader tightens the read deadline to FrameTimeout once the first
// byte of a frame has arrived.
type frameReader struct {
	c        net.Conn
	deadline time.Time // ctx's; zero if none
	started  bool
}

func (f *frameReader) Read(p []byte) (int, error) {
	n, err := f.c.Read(p)
	if n > 0 && !f.started {
		f.started = true
		d := time.Now().Add(FrameTimeout)
		if !f.deadline.IsZero() && f.deadline.Before(d) {
			d = f.deadline
		}
		if serr := f.c.SetReadDeadline(d); serr != nil && err == nil {
			err = serr
		}
	}
	return n, err
}

// Call sends req under a new request id and returns the answer carrying
// the same id. An Error answer is returned as the error (a *Error).
func (c *Conn) Call(ctx context.Context, req Message) (Message, error) {
	c.callMu.Lock()
	defer c.callMu.Unlock()
	id := c.lastID.Add(1)
	if err := c.Send(ctx, req, id); err != nil {
		return nil, err
	}
	resp, got, err := c.Receive(ctx)
	if err != nil {
		return nil, err
	}
	if got != id {
		return nil, fmt.Errorf("enclaveproto: answer to %s has request id %d, want %d: %w", req.Type(), got, id, ErrMalformed)
	}
	if e, ok := resp.(*Error); ok {
		return nil, e
	}
	return resp, nil
}

// Close closes the underlying connection.
func (c *Conn) Close() error { return c.nc.Close() }

// longAgo is a deadline in the past, which makes a blocked read or write
// return at once.
var longAgo = time.Unix(1, 0)

// withDeadline runs op under ctx's deadline (none if ctx has none) and
// interrupts it if ctx is cancelled first.
func withDeadline(ctx context.Context, set func(time.Time) error, op func() error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("enclaveproto: %w", err)
	}
	deadline, _ := ctx.Deadline()
	if err := set(deadline); err != nil {
		return fmt.Errorf("enclaveproto: failed to set deadline: %w", err)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		set(longAgo)
		close(fired)
	})
	err := op()
	if !stop() {
		// Wait, so a late interrupt cannot clobber the next message's deadline.
		<-fired
	}
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w: %w", cerr, err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) { // ctx's deadline, seen by the conn first
		return fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	return err
}

// Expect returns m as a T, or an error wrapping ErrUnexpectedType; an
// *Error is returned as the error itself.
func Expect[T Message](m Message) (T, error) {
	var zero T
	if t, ok := m.(T); ok && m != nil {
		return t, nil
	}
	if e, ok := m.(*Error); ok {
		return zero, e
	}
	want, got := "a message", "no message"
	if w, ok := any(zero).(Message); ok {
		want = w.Type().String()
	}
	if m != nil {
		got = m.Type().String()
	}
	return zero, fmt.Errorf("enclaveproto: got %s, want %s: %w", got, want, ErrUnexpectedType)
}
