package enclave

import (
	"context"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
)

// shipper sends log records and events to the host over one long-lived
// connection. A slow or absent host never blocks the signer: messages
// queue in a bounded buffer and the overflow is counted and dropped.
type shipper struct {
	dial    func(ctx context.Context, port uint32) (net.Conn, error)
	port    atomic.Uint32             // the host's log port; the configuration may change it
	queue   chan enclaveproto.Message // *LogRecord or an Event
	dropped atomic.Uint64
}

func newShipper(dial func(ctx context.Context, port uint32) (net.Conn, error), port uint32) *shipper {
	s := &shipper{dial: dial, queue: make(chan enclaveproto.Message, 1024)}
	s.port.Store(port)
	return s
}

func (s *shipper) enqueue(m enclaveproto.Message) {
	select {
	case s.queue <- m:
	default:
		s.dropped.Add(1)
	}
}

// run delivers queued messages until ctx ends, redialing as needed.
func (s *shipper) run(ctx context.Context) {
	var c *enclaveproto.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	backoff := 100 * time.Millisecond
	for {
		var r enclaveproto.Message
		select {
		case <-ctx.Done():
			return
		case r = <-s.queue:
		}
		for c == nil {
			nc, err := s.dial(ctx, s.port.Load())
			if err == nil {
				c = enclaveproto.NewConn(nc, enclaveproto.MaxPayload(enclaveproto.TypeLogRecord))
				if n := s.dropped.Swap(0); n > 0 {
					c.Send(ctx, &enclaveproto.LogRecord{Time: time.Now(), Level: int(slog.LevelWarn), Message: "log records and events dropped while the host was unreachable", Attrs: []enclaveproto.Attr{{Key: "count", Value: itoa(n)}}}, 0)
				}
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
		}
		backoff = 100 * time.Millisecond
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		if err := c.Send(sctx, r, 0); err != nil {
			c.Close()
			c = nil
			s.dropped.Add(1)
		}
		cancel()
	}
}

func itoa(n uint64) string { return slog.Uint64Value(n).String() }

// handler is a slog.Handler that writes to a local handler and ships to the
// host.
type handler struct {
	local slog.Handler
	ship  *shipper
	attrs []slog.Attr
	group string
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.local.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	rec := &enclaveproto.LogRecord{Time: r.Time, Level: int(r.Level), Message: r.Message}
	add := func(a slog.Attr) bool {
		if len(rec.Attrs) < enclaveproto.MaxLogAttrs {
			key := a.Key
			if h.group != "" {
				key = h.group + "." + key
			}
			rec.Attrs = append(rec.Attrs, enclaveproto.Attr{Key: key, Value: a.Value.Resolve().String()})
		}
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	h.ship.enqueue(rec)
	return h.local.Handle(ctx, r)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.local = h.local.WithAttrs(as)
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *handler) WithGroup(name string) slog.Handler {
	c := *h
	c.local = h.local.WithGroup(name)
	c.group = name
	return &c
}
