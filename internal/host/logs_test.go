package host

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/metrics"
)

// TestLogSinkCountsEvents sends the log channel what an enclave sends and
// checks the metrics and the Events callback against its events alone: a
// record worded as the enclave once worded refusals counts nothing, and an
// event counts with its record reworded or missing.
func TestLogSinkCountsEvents(t *testing.T) {
	rec := func(msg string, attrs ...enclaveproto.Attr) *enclaveproto.LogRecord {
		return &enclaveproto.LogRecord{Time: time.Unix(1, 0), Level: int(slog.LevelError), Message: msg, Attrs: attrs}
	}
	signed := &enclaveproto.Signed{ChainID: "c", Height: 9, Round: 1, Step: 2, Latency: 3 * time.Millisecond}
	tests := []struct {
		name       string
		sent       []enclaveproto.Message
		signatures float64 // tmkms_signatures_total{chain_id="c",type="prevote"}
		refusals   map[string]float64
		events     int
		logged     string
	}{
		{"old refusal wording, no event", []enclaveproto.Message{
			rec("refused to sign", enclaveproto.Attr{Key: "chain_id", Value: "c"}, enclaveproto.Attr{Key: "err", Value: "double sign: conflicting data"}),
			rec("signed", enclaveproto.Attr{Key: "chain_id", Value: "c"}, enclaveproto.Attr{Key: "hrs", Value: "9/1/prevote"}),
		}, 0, map[string]float64{"double_sign": 0}, 0, "refused to sign"},
		{"refusal reworded", []enclaveproto.Message{
			rec("the guard said no"),
			&enclaveproto.Refused{ChainID: "c", Height: 9, Step: 2, Reason: enclaveproto.ReasonDoubleSign, Message: "x"},
		}, 0, map[string]float64{"double_sign": 1, "other": 0}, 1, "the guard said no"},
		{"events without records", []enclaveproto.Message{
			&enclaveproto.Refused{ChainID: "c", Reason: enclaveproto.ReasonWrongChainID},
			&enclaveproto.Refused{ChainID: "c", Reason: enclaveproto.ReasonCluster},
			signed,
		}, 1, map[string]float64{"wrong_chain_id": 1, "cluster_unavailable": 1, "double_sign": 0}, 3, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			var got []enclaveproto.Event
			m := metrics.NewSet(metrics.Options{})
			m.Chain("c")
			sink := &LogSink{Log: slog.New(slog.NewTextHandler(&logs, nil)), Metrics: m, Events: func(ev enclaveproto.Event) { got = append(got, ev) }}
			host, enclave := net.Pipe()
			done := make(chan error, 1)
			go func() { done <- sink.serveConn(t.Context(), host) }()
			c := enclaveproto.NewConn(enclave, enclaveproto.MaxLogPayload)
			for _, msg := range tt.sent {
				if err := c.Send(t.Context(), msg, 0); err != nil {
					t.Fatal(err)
				}
			}
			enclave.Close()
			<-done
			if v := value(t, m, "c", "tmkms_signatures_total", "type", "prevote"); v != tt.signatures {
				t.Errorf("signatures = %v, want %v", v, tt.signatures)
			}
			for reason, want := range tt.refusals {
				if v := value(t, m, "c", "tmkms_refusals_total", "reason", reason); v != want {
					t.Errorf("refusals{reason=%q} = %v, want %v", reason, v, want)
				}
			}
			if len(got) != tt.events {
				t.Errorf("Events saw %d events, want %d", len(got), tt.events)
			}
			if !strings.Contains(logs.String(), tt.logged) || tt.logged != "" && !strings.Contains(logs.String(), "source=enclave") {
				t.Errorf("host log lacks %q from the enclave:\n%s", tt.logged, logs.String())
			}
		})
	}
}

// TestLogSinkSignedValues checks that a signature's position and latency
// reach the gauges and the histogram of its chain as sent, and nothing of
// another chain.
func TestLogSinkSignedValues(t *testing.T) {
	m := metrics.NewSet(metrics.Options{})
	m.Chain("c")
	m.Chain("d")
	sink := &LogSink{Log: slog.New(slog.DiscardHandler), Metrics: m}
	sink.count(&enclaveproto.Signed{ChainID: "c", Height: 1200, Round: 3, Step: 3, Latency: 2 * time.Millisecond})
	for name, want := range map[string]float64{"tmkms_last_signed_height": 1200, "tmkms_last_signed_round": 3, "tmkms_last_signed_step": 3} {
		if v := value(t, m, "c", name, "", ""); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
		if v := value(t, m, "d", name, "", ""); v != 0 {
			t.Errorf("%s of the other chain = %v, want 0", name, v)
		}
	}
	if v := value(t, m, "c", "tmkms_signatures_total", "type", "precommit"); v != 1 {
		t.Errorf("precommit signatures = %v, want 1", v)
	}
	if v := value(t, m, "d", "tmkms_signatures_total", "type", "precommit"); v != 0 {
		t.Errorf("precommit signatures of the other chain = %v, want 0", v)
	}
}

// TestLogSinkUnknownChain: the events of a chain not registered in the
// Set are passed on but counted nowhere and create no series.
func TestLogSinkUnknownChain(t *testing.T) {
	m := metrics.NewSet(metrics.Options{})
	m.Chain("c")
	events := 0
	sink := &LogSink{Log: slog.New(slog.DiscardHandler), Metrics: m, Events: func(enclaveproto.Event) { events++ }}
	host, enclave := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- sink.serveConn(t.Context(), host) }()
	c := enclaveproto.NewConn(enclave, enclaveproto.MaxLogPayload)
	for _, msg := range []enclaveproto.Message{
		&enclaveproto.Signed{ChainID: "unknown", Height: 5, Step: 2},
		&enclaveproto.Refused{ChainID: "unknown", Reason: enclaveproto.ReasonDoubleSign},
	} {
		if err := c.Send(t.Context(), msg, 0); err != nil {
			t.Fatal(err)
		}
	}
	enclave.Close()
	<-done
	if events != 2 {
		t.Errorf("Events saw %d events, want 2", events)
	}
	if m.Lookup("unknown") != nil {
		t.Error("an event registered its chain")
	}
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			if hasLabel(s, "chain_id", "unknown") {
				t.Errorf("%s: a series of the unknown chain", f.GetName())
			}
		}
	}
	if v := value(t, m, "c", "tmkms_signatures_total", "type", "prevote"); v != 0 {
		t.Errorf("the registered chain counted %v signatures, want 0", v)
	}
	if v := value(t, m, "c", "tmkms_refusals_total", "reason", "double_sign"); v != 0 {
		t.Errorf("the registered chain counted %v refusals, want 0", v)
	}
}

// value gathers m and returns the metric name's value in chain's series
// whose label has that value (any series of chain when label is ""), or
// -1 if none has.
func value(t *testing.T, m *metrics.Set, chain, name, label, labelValue string) float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			if hasLabel(s, "chain_id", chain) && (label == "" || hasLabel(s, label, labelValue)) {
				if s.GetCounter() != nil {
					return s.GetCounter().GetValue()
				}
				return s.GetGauge().GetValue()
			}
		}
	}
	return -1
}

func hasLabel(s *dto.Metric, name, value string) bool {
	for _, l := range s.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}
