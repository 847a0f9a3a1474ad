package privval

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"time"
)

// Options tune a connection. Zero values mean the defaults.
type Options struct {
	// MaxMessageSize bounds a request; default DefaultMaxMessageSize.
	MaxMessageSize int
	// IdleTimeout drops a connection on which no request arrived for this
	// long. A live node sends at least a ping every ~3.3 s, so three missed
	// pings mean the node or the path to it is gone. Default 10 s.
	IdleTimeout time.Duration
	// WriteTimeout bounds writing one response. Default 5 s, the node's
	// own read timeout.
	WriteTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	o.MaxMessageSize = min(o.MaxMessageSize, MaxMessageSize)
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 5 * time.Second
	}
	return o
}

// serveConn answers requests on conn until the connection fails, a request
// breaks the protocol, or ctx ends. It closes conn and returns how many
// requests it answered and why it ended.
func (h *Handler) serveConn(ctx context.Context, conn net.Conn, opts Options) (served int, err error) {
	opts = opts.withDefaults()
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r := bufio.NewReader(conn)
	var out []byte
	for {
		if err := conn.SetReadDeadline(time.Now().Add(opts.IdleTimeout)); err != nil {
			return served, fmt.Errorf("failed to set read deadline: %w", err)
		}
		body, err := readFrame(r, opts.MaxMessageSize)
		if err != nil {
			if ctx.Err() != nil {
				return served, ctx.Err()
			}
			return served, err
		}
		resp, err := h.Handle(ctx, body)
		if err != nil {
			return served, err
		}
		out = appendFrame(out[:0], resp)
		if err := conn.SetWriteDeadline(time.Now().Add(opts.WriteTimeout)); err != nil {
			return served, fmt.Errorf("failed to set write deadline: %w", err)
		}
		if _, err := conn.Write(out); err != nil {
			return served, fmt.Errorf("failed to write response: %w", err)
		}
		served++
	}
}

// Dialer connects to the node.
type Dialer func(ctx context.Context) (net.Conn, error)

// Backoff bounds for redialing. The node waits only 3 s for a signer when
// it starts and drops the connection on any I/O error, so redials start
// fast; the cap keeps a long outage from spinning.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// Run dials the node and serves it, redialing with capped, jittered
// exponential backoff whenever the connection fails, until ctx ends.
func (h *Handler) Run(ctx context.Context, dial Dialer, opts Options) error {
	backoff := minBackoff
	failures := 0
	for {
		conn, err := dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failures++
			if failures == 1 || failures%20 == 0 {
				h.log.Warn("cannot reach the validator, retrying", "err", err, "attempts", failures)
			}
		} else {
			if failures == 0 {
				h.log.Info("connected to the validator", "remote", conn.RemoteAddr())
			}
			served, err := h.serveConn(ctx, conn, opts)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if served > 0 {
				h.logDisconnect(err)
				failures, backoff = 0, minBackoff
				continue // the node is re-listening already: redial at once
			}
			// Closed before any request: a proxy that could not reach the
			// node, or a node going down. Back off as for a failed dial.
			failures++
			if failures == 1 || failures%20 == 0 {
				h.log.Warn("the validator connection closed before any request, retrying", "err", err, "attempts", failures)
			}
		}
		if !sleep(ctx, jitter(backoff)) {
			return ctx.Err()
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (h *Handler) logDisconnect(err error) {
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
		h.log.Info("validator closed the connection, redialing")
	case errors.Is(err, ErrMessageTooLarge) || errors.Is(err, ErrMalformed):
		h.log.Error("dropped the connection after a bad message, redialing", "err", err)
	default:
		h.log.Warn("connection to the validator failed, redialing", "err", err)
	}
}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
