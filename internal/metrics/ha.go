package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a commit to the high-availability cluster, the values of
// the result label of tmkms_ha_commits_total.
const (
	CommitWon         = "won"         // this instance's decision was written
	CommitLost        = "lost"        // another instance had committed this position or a later one
	CommitStale       = "stale"       // the enclave's view was out of date; it retries on the current record
	CommitUnavailable = "unavailable" // etcd unreachable or without quorum; nothing was signed
)

// haMetrics exist only with an [ha] table, per chain (each chain has its
// own decision record in etcd); like the chain's other series, each
// carries its chain_id label.
type haMetrics struct {
	// tmkms_ha_commits_total{result}: compare-and-swap attempts of the
	// enclave's decisions, by outcome (won, lost, stale, unavailable).
	commits *prometheus.CounterVec
	// tmkms_ha_commit_seconds: etcd round trip of one attempt.
	latency prometheus.Histogram
	// tmkms_ha_etcd_up: 1 while etcd answers the chain's linearizable
	// reads, else 0.
	etcdUp prometheus.Gauge
	// tmkms_ha_instances_alive: signer instances of the chain holding a
	// live lease.
	alive prometheus.Gauge
	// tmkms_ha_decision_instance{instance}: 1 for the instance whose
	// decision is the chain's latest as this helper saw it (the one
	// signing), 0 for the others seen before.
	decider *prometheus.GaugeVec
	last    string
	up      bool // etcd had quorum at the last check
}

// EnableAnchor makes the chain's health fit an instance of an anchored
// set: the enclave reaches etcd itself, so this helper cannot see quorum,
// and a standby signs nothing. Healthy is then the enclave up and no
// decision of this instance refused for want of the anchor since its
// last signature (within the health window).
func (m *Metrics) EnableAnchor() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.anchored = true
}

// EnableHA registers the chain's high-availability metrics; later calls
// do nothing.
func (m *Metrics) EnableHA() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ha != nil {
		return
	}
	h := &haMetrics{
		commits: counterVec("tmkms_ha_commits_total",
			"Compare-and-swap attempts of the enclave's decisions in etcd, by result (won, lost, stale, unavailable).",
			"result"),
		latency: latencyHistogram("tmkms_ha_commit_seconds",
			"Time of one compare-and-swap round trip to etcd."),
		etcdUp: gauge("tmkms_ha_etcd_up",
			"1 while etcd answers linearizable reads (it has quorum), else 0."),
		alive: gauge("tmkms_ha_instances_alive",
			"Signer instances of this chain holding a live lease in etcd."),
		decider: gaugeVec("tmkms_ha_decision_instance",
			"1 for the instance that made the cluster's latest decision (the one signing), 0 for others seen.",
			"instance"),
	}
	for _, r := range []string{CommitWon, CommitLost, CommitStale, CommitUnavailable} {
		h.commits.WithLabelValues(r)
	}
	m.reg.MustRegister(h.commits, h.latency, h.etcdUp, h.alive, h.decider)
	m.ha = h
}

// HACommit records one commit attempt and, when known, the instance whose
// decision is now in force.
func (m *Metrics) HACommit(latency time.Duration, result, decider string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.ha
	if h == nil {
		return
	}
	h.commits.WithLabelValues(result).Inc()
	h.latency.Observe(max(latency, 0).Seconds())
	h.setDecider(decider)
}

// HADecider records the instance whose decision is the cluster's latest,
// as the periodic health check reads it.
func (m *Metrics) HADecider(instance string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ha != nil {
		m.ha.setDecider(instance)
	}
}

func (h *haMetrics) setDecider(decider string) {
	if decider == "" || decider == h.last {
		return
	}
	if h.last != "" {
		h.decider.WithLabelValues(h.last).Set(0)
	}
	h.decider.WithLabelValues(decider).Set(1)
	h.last = decider
}

// HAHealth records whether etcd has quorum and how many instances are
// alive.
func (m *Metrics) HAHealth(up bool, alive int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ha == nil {
		return
	}
	m.ha.up = up
	m.ha.etcdUp.Set(b2f(up))
	m.ha.alive.Set(float64(alive))
}
