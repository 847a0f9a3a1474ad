package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
)

// Signature types as the enclave names them (signstate.Step's String).
var signatureTypes = []string{"proposal", "prevote", "precommit"}

// latencyBuckets cover 0.1 ms (an in-memory signature) to 5 s (CometBFT's
// own budget for a remote signature; anything later is a missed vote).
var latencyBuckets = []float64{
	0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005,
	0.01, 0.025, 0.05,
	0.1, 0.25, 0.5,
	1, 2.5, 5,
}

// DefaultHealthWindow is Options.HealthWindow's default.
const DefaultHealthWindow = 60 * time.Second

// Options configure NewSet.
type Options struct {
	// HealthWindow: a chain is unhealthy when no signature was released
	// for it for this long (default 60 s). The same span after the chain
	// was registered is a grace period in which no signature is required
	// yet.
	HealthWindow time.Duration
	// Now is the clock (default time.Now); tests inject one.
	Now func() time.Time
}

// Set is a helper's metrics: one registry, served on one /metrics with
// one /healthz, holding the Go runtime (go_*) and process (process_*)
// collectors and the [Metrics] of each chain the helper signs for, every
// series of which carries that chain's chain_id label. All methods are
// safe for concurrent use; each Set has its own registry.
type Set struct {
	reg    *prometheus.Registry
	now    func() time.Time
	window time.Duration

	mu     sync.Mutex
	chains map[string]*Metrics

	handlerOnce sync.Once
	handler     http.Handler
}

// NewSet returns a Set without chains on a fresh registry.
func NewSet(opts Options) *Set {
	if opts.HealthWindow <= 0 {
		opts.HealthWindow = DefaultHealthWindow
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Set{
		reg:    prometheus.NewRegistry(),
		now:    opts.Now,
		window: opts.HealthWindow,
		chains: map[string]*Metrics{},
	}
	s.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return s
}

// Chain returns the metrics of chainID, registering them on the first
// call (later calls return the same value). Every series of a chain
// carries chain_id="chainID"; its tmkms_signatures_total and
// tmkms_refusals_total series are created at 0, so that rate() and
// increase() see the first event instead of a series appearing at 1. The
// chain's health grace period starts at the first call. chainID must not
// be empty (Chain panics): a series with an empty label is one without
// it.
func (s *Set) Chain(chainID string) *Metrics {
	if chainID == "" {
		panic("metrics: Chain with an empty chain id")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.chains[chainID]; m != nil {
		return m
	}
	m := newMetrics(chainID, prometheus.WrapRegistererWith(prometheus.Labels{"chain_id": chainID}, s.reg), s.now, s.window)
	s.chains[chainID] = m
	return m
}

// Lookup returns the metrics of chainID if Chain registered them, else
// nil: a chain id that arrives from elsewhere (the enclave's events)
// cannot create series.
func (s *Set) Lookup(chainID string) *Metrics {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.chains[chainID]
}

// Registry returns the registry, to add collectors or gather in tests.
func (s *Set) Registry() *prometheus.Registry { return s.reg }

// Health reports whether the helper is healthy and, if not, why in one
// line. It is healthy when every registered chain is ([Metrics.Health]);
// otherwise the reason names each unhealthy chain, in chain id order:
// "chain-a: no signature for 2m0s; chain-b: enclave unreachable". With
// no chain registered it is unhealthy ("no chain configured"): a helper
// that signs for no chain serves no validator.
func (s *Set) Health() (ok bool, reason string) {
	s.mu.Lock()
	chains := slices.Sorted(maps.Keys(s.chains))
	ms := make([]*Metrics, len(chains))
	for i, id := range chains {
		ms[i] = s.chains[id]
	}
	s.mu.Unlock()
	if len(ms) == 0 {
		return false, "no chain configured"
	}
	var bad []string
	for i, m := range ms {
		if ok, why := m.Health(); !ok {
			bad = append(bad, chains[i]+": "+why)
		}
	}
	if len(bad) > 0 {
		return false, strings.Join(bad, "; ")
	}
	return true, ""
}

// Metrics are one chain's Prometheus metrics and health state, every
// series labelled with its chain_id; [Set.Chain] makes them. All methods
// are safe for concurrent use.
type Metrics struct {
	chainID string
	reg     prometheus.Registerer // adds chain_id to what it registers
	now     func() time.Time
	window  time.Duration
	start   time.Time

	// tmkms_signatures_total{type}: signatures the enclave released (a
	// repeated request answered with the stored signature is not counted:
	// the enclave reports no Signed event for it).
	signatures *prometheus.CounterVec
	// tmkms_refusals_total{reason}: signing requests the enclave refused,
	// by reason (enclaveproto.Reason, which the enclave chooses).
	refusals *prometheus.CounterVec
	// tmkms_signing_latency_seconds: time from the enclave receiving a
	// signing request to releasing the signature, including the state
	// round trip to the helper (the latency of the enclave's Signed
	// event).
	signLatency prometheus.Histogram
	// tmkms_last_signed_height, tmkms_last_signed_round,
	// tmkms_last_signed_step: position of the last released signature;
	// step is 1 proposal, 2 prevote, 3 precommit (CometBFT's FilePV
	// values), 0 unknown.
	lastHeight, lastRound, lastStep prometheus.Gauge
	// tmkms_last_signature_timestamp_seconds: Unix time of the last
	// released signature, 0 before the first.
	lastSignedAt prometheus.Gauge
	// tmkms_state_persist_seconds: time for the helper to durably write
	// (fdatasync) one double-sign state, failed attempts included.
	persistLatency prometheus.Histogram
	// tmkms_state_persist_failures_total: states the helper failed or
	// refused to persist; the enclave signs nothing for each.
	persistFailures prometheus.Counter
	// tmkms_validator_connected: 1 while the bridge holds a connection to
	// the validator's priv_validator_laddr, else 0.
	validatorUp prometheus.Gauge
	// tmkms_validator_reconnects_total: times the bridge redialed the
	// validator after a connection ended or failed.
	reconnects prometheus.Counter
	// tmkms_enclave_up: 1 when the chain's last configuration push
	// reached the enclave and it answered, else 0.
	enclaveUp prometheus.Gauge
	// tmkms_credentials_expiry_timestamp_seconds: Unix time at which the
	// AWS credentials last pushed to the enclave with the chain's
	// configuration expire; 0 for static credentials that never expire.
	credsExpiry prometheus.Gauge

	mu            sync.Mutex
	ha            *haMetrics // nil without host-relayed [ha]
	anchored      bool       // an instance of an anchored set (EnableAnchor)
	clusterFailed time.Time  // the last cluster_unavailable refusal
	enclaveOK     bool
	lastSigned    time.Time // zero before the first signature
	everSigned    bool
}

func newMetrics(chainID string, reg prometheus.Registerer, now func() time.Time, window time.Duration) *Metrics {
	m := &Metrics{
		chainID: chainID,
		reg:     reg,
		now:     now,
		window:  window,
		start:   now(),
		signatures: counterVec("tmkms_signatures_total",
			"Signatures the enclave released, by chain and type (proposal, prevote, precommit).",
			"type"),
		refusals: counterVec("tmkms_refusals_total",
			"Signing requests the enclave refused, by chain and reason (double_sign, regression, wrong_chain_id, persist_failed, invalid, other).",
			"reason"),
		signLatency: latencyHistogram("tmkms_signing_latency_seconds",
			"Time from the enclave receiving a signing request to releasing the signature, state persistence included."),
		lastHeight: gauge("tmkms_last_signed_height",
			"Height of the last released signature."),
		lastRound: gauge("tmkms_last_signed_round",
			"Round of the last released signature."),
		lastStep: gauge("tmkms_last_signed_step",
			"Step of the last released signature: 1 proposal, 2 prevote, 3 precommit, 0 unknown."),
		lastSignedAt: gauge("tmkms_last_signature_timestamp_seconds",
			"Unix time of the last released signature, 0 before the first."),
		persistLatency: latencyHistogram("tmkms_state_persist_seconds",
			"Time to durably write one double-sign state (fdatasync), failed attempts included."),
		persistFailures: counter("tmkms_state_persist_failures_total",
			"Double-sign states the helper failed or refused to persist; nothing was signed for each."),
		validatorUp: gauge("tmkms_validator_connected",
			"1 while the bridge holds a connection to the validator, else 0."),
		reconnects: counter("tmkms_validator_reconnects_total",
			"Times the bridge redialed the validator after a connection ended or failed."),
		enclaveUp: gauge("tmkms_enclave_up",
			"1 when the chain's last configuration push reached the enclave, else 0."),
		credsExpiry: gauge("tmkms_credentials_expiry_timestamp_seconds",
			"Unix time at which the AWS credentials pushed to the enclave expire; 0 if they never expire."),
	}
	m.reg.MustRegister(
		m.signatures, m.refusals, m.signLatency,
		m.lastHeight, m.lastRound, m.lastStep, m.lastSignedAt,
		m.persistLatency, m.persistFailures,
		m.validatorUp, m.reconnects, m.enclaveUp, m.credsExpiry,
	)
	for _, t := range signatureTypes {
		m.signatures.WithLabelValues(t)
	}
	for _, r := range enclaveproto.Reasons() {
		m.refusals.WithLabelValues(string(r))
	}
	return m
}

// The constructors below keep each metric's declaration to its name and
// help text; every histogram here measures a latency.

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

func gauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

func gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
}

func latencyHistogram(name, help string) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: latencyBuckets})
}

// ChainID returns the chain the metrics are labelled with.
func (m *Metrics) ChainID() string { return m.chainID }

// Signed records one signature the enclave released (its Signed event).
// step is the step's name ("proposal", "prevote", "precommit").
func (m *Metrics) Signed(msgType string, height int64, round int32, step string, latency time.Duration) {
	m.signatures.WithLabelValues(msgType).Inc()
	m.signLatency.Observe(max(latency, 0).Seconds())
	m.lastHeight.Set(float64(height))
	m.lastRound.Set(float64(round))
	m.lastStep.Set(float64(StepValue(step)))
	now := m.now()
	m.lastSignedAt.Set(float64(now.UnixNano()) / 1e9)
	m.mu.Lock()
	m.lastSigned, m.everSigned = now, true
	m.mu.Unlock()
}

// Refused records one refused signing request (the enclave's Refused
// event). An unknown reason is recorded as other, so that the label's
// cardinality stays bounded.
func (m *Metrics) Refused(reason enclaveproto.Reason) {
	if !reason.Known() {
		reason = enclaveproto.ReasonOther
	}
	m.refusals.WithLabelValues(string(reason)).Inc()
	if reason == enclaveproto.ReasonCluster {
		m.mu.Lock()
		m.clusterFailed = m.now()
		m.mu.Unlock()
	}
}

// StatePersisted records one attempt to persist the double-sign state:
// its duration, and a failure when err is not nil.
func (m *Metrics) StatePersisted(latency time.Duration, err error) {
	m.persistLatency.Observe(max(latency, 0).Seconds())
	if err != nil {
		m.persistFailures.Inc()
	}
}

// ValidatorConnection records whether the bridge holds a connection to the
// validator.
func (m *Metrics) ValidatorConnection(up bool) { m.validatorUp.Set(b2f(up)) }

// ValidatorReconnect records one redial of the validator after a
// connection ended or failed.
func (m *Metrics) ValidatorReconnect() { m.reconnects.Inc() }

// EnclaveUp records whether the last configuration push reached the
// enclave. Until the first call the enclave counts as down.
func (m *Metrics) EnclaveUp(up bool) {
	m.enclaveUp.Set(b2f(up))
	m.mu.Lock()
	m.enclaveOK = up
	m.mu.Unlock()
}

// CredentialsExpiry records when the pushed AWS credentials expire; the
// zero time means they never expire (static credentials) and records 0.
func (m *Metrics) CredentialsExpiry(t time.Time) {
	if t.IsZero() {
		m.credsExpiry.Set(0)
		return
	}
	m.credsExpiry.Set(float64(t.Unix()))
}

// Health reports whether the chain is healthy and, if not, why in one
// line: the enclave must be up for it, and a signature must have been
// released within the health window (not required during the window
// after the chain was registered).
// With high availability a standby instance signs nothing, so instead of
// a recent signature etcd must have quorum (host-relayed [ha]) or this
// instance's last decision must not have been refused for want of the
// cluster (an anchor, which only the enclave can reach).
func (m *Metrics) Health() (ok bool, reason string) {
	now := m.now()
	m.mu.Lock()
	enclaveOK, last, ever := m.enclaveOK, m.lastSigned, m.everSigned
	ha, etcdOK, failed := m.ha != nil, m.ha != nil && m.ha.up, m.clusterFailed
	set := ha || m.anchored
	m.mu.Unlock()
	switch {
	case !enclaveOK:
		return false, "enclave unreachable"
	case ha && !etcdOK:
		return false, "etcd unavailable (no quorum): no signature can be released"
	case set && failed.After(last) && now.Sub(failed) <= m.window:
		return false, "the last decision could not be committed to the cluster (see the enclave's refusal)"
	case set:
		return true, ""
	case ever && now.Sub(last) <= m.window:
		return true, ""
	case !ever && now.Sub(m.start) <= m.window:
		return true, ""
	case ever:
		return false, "no signature for " + roundDur(now.Sub(last))
	default:
		return false, "no signature for " + roundDur(now.Sub(m.start)) + " (none since start)"
	}
}

// Handler serves /metrics (Prometheus exposition of the registry, every
// chain's series) and /healthz (200 "ok", or 503 with the one-line reason
// of Health).
func (s *Set) Handler() http.Handler {
	s.handlerOnce.Do(func() {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
			ErrorHandling:     promhttp.ContinueOnError,
			Timeout:           10 * time.Second,
			EnableOpenMetrics: true,
		}))
		mux.HandleFunc("GET /healthz", s.serveHealth)
		s.handler = mux
	})
	return s.handler
}

func (s *Set) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	ok, reason := s.Health()
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, reason)
		return
	}
	fmt.Fprintln(w, "ok")
}

// Serve listens on addr (host:port) and serves Handler until ctx ends,
// then shuts the server down. A failure to listen is returned at once.
func (s *Set) Serve(ctx context.Context, addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: failed to listen on %s: %w", addr, err)
	}
	return s.serve(ctx, ln, log)
}

func (s *Set) serve(ctx context.Context, ln net.Listener, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("serving metrics", "address", ln.Addr().String(), "paths", "/metrics /healthz")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics: server stopped: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: server stopped: %w", err)
	}
	return nil
}

// StepValue is the tmkms_last_signed_step value of a step name: 1
// proposal, 2 prevote, 3 precommit (CometBFT's FilePV values), else 0.
func StepValue(step string) int {
	switch step {
	case "proposal", "propose":
		return 1
	case "prevote":
		return 2
	case "precommit":
		return 3
	}
	return 0
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// roundDur prints d to the second ("1m30s"), or to the millisecond below
// one second.
func roundDur(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
