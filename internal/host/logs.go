package host

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
)

// LogSink prints the enclave's log records through the host's logger, at
// their own level, marked source=enclave.
type LogSink struct {
	Log *slog.Logger
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
		r, ok := m.(*enclaveproto.LogRecord)
		if !ok {
			return fmt.Errorf("%w: %s on the log channel", enclaveproto.ErrUnexpectedType, m.Type())
		}
		rec := slog.NewRecord(r.Time, slog.Level(r.Level), r.Message, 0)
		for _, a := range r.Attrs {
			rec.AddAttrs(slog.String(a.Key, a.Value))
		}
		if h := log.Handler(); h.Enabled(ctx, rec.Level) {
			h.Handle(ctx, rec)
		}
	}
}
