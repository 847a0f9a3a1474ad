package host

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/metrics"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// LogSink prints the enclave's log records through the host's logger, at
// their own level, marked source=enclave, and counts and passes on its
// events. Records are read by people only: what the enclave did is taken
// from its events, never from the wording of its logs.
type LogSink struct {
	Log *slog.Logger
	// Metrics, optional, counts signatures and refusals under their
	// chain's metrics; events for a chain it does not know are not
	// counted, so that what the enclave names cannot add series.
	Metrics *metrics.Set
	Events  func(enclaveproto.Event) // optional: called for each event, after Metrics
}

// Serve accepts the enclave's log connection until ctx ends.
func (s *LogSink) Serve(ctx context.Context, ln net.Listener) error {
	return serveOne(ctx, ln, s.Log, "log", s.serveConn)
}

func (s *LogSink) serveConn(ctx context.Context, nc net.Conn) error {
	c := enclaveproto.NewConn(nc, enclaveproto.MaxPayload(enclaveproto.TypeLogRecord))
	log := s.Log.With("source", "enclave")
	for {
		m, _, err := c.Receive(ctx)
		if err != nil {
			return err
		}
		switch m := m.(type) {
		case *enclaveproto.LogRecord:
			rec := slog.NewRecord(m.Time, slog.Level(m.Level), m.Message, 0)
			for _, a := range m.Attrs {
				rec.AddAttrs(slog.String(a.Key, a.Value))
			}
			if h := log.Handler(); h.Enabled(ctx, rec.Level) {
				h.Handle(ctx, rec)
			}
		case enclaveproto.Event:
			s.count(m)
			if s.Events != nil {
				s.Events(m)
			}
		default:
			return fmt.Errorf("%w: %s on the log channel", enclaveproto.ErrUnexpectedType, m.Type())
		}
	}
}

func (s *LogSink) count(ev enclaveproto.Event) {
	if s.Metrics == nil {
		return
	}
	switch ev := ev.(type) {
	case *enclaveproto.Signed:
		if m := s.Metrics.Lookup(ev.ChainID); m != nil {
			step := signstate.Step(ev.Step).String()
			m.Signed(step, ev.Height, ev.Round, step, ev.Latency)
		}
	case *enclaveproto.Refused:
		if m := s.Metrics.Lookup(ev.ChainID); m != nil {
			m.Refused(ev.Reason)
		}
	}
}
