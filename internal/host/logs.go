package host

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/metrics"
)

// LogSink prints the enclave's log records through the host's logger, at
// their own level, marked source=enclave.
type LogSink struct {
	Log     *slog.Logger
	Metrics *metrics.Metrics // optional: signatures and refusals are counted from the records
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
		s.count(r)
		if h := log.Handler(); h.Enabled(ctx, rec.Level) {
			h.Handle(ctx, rec)
		}
	}
}

// count feeds the metrics from the enclave's one-line-per-signature and
// per-refusal records.
func (s *LogSink) count(r *enclaveproto.LogRecord) {
	if s.Metrics == nil {
		return
	}
	attrs := make(map[string]string, len(r.Attrs))
	for _, a := range r.Attrs {
		attrs[a.Key] = a.Value
	}
	switch {
	case r.Message == "signed":
		h, round, step, err := metrics.ParseHRS(attrs["hrs"])
		if err != nil {
			return
		}
		latency, _ := time.ParseDuration(attrs["latency"])
		s.Metrics.Signed(attrs["chain_id"], attrs["type"], h, round, step, latency)
	case strings.HasPrefix(r.Message, "refused"):
		s.Metrics.Refused(attrs["chain_id"], metrics.ReasonFromError(r.Message+": "+attrs["err"]))
	}
}
