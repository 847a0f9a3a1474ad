package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// clock is an injectable, advanceable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// wantLines checks that each of wants ends a line of the exposition body.
func wantLines(t *testing.T, body string, wants ...string) {
	t.Helper()
	missing := false
	for _, want := range wants {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
			missing = true
		}
	}
	if missing {
		t.Logf("exposition:\n%s", body)
	}
}

func TestExposition(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	m := New(Options{Now: clk.Now, ChainID: "test-chain"})
	New(Options{}) // a second instance must not collide: no global registry

	m.Signed("test-chain", "prevote", 1200, 0, "prevote", 800*time.Microsecond)
	clk.Add(1500 * time.Millisecond)
	m.Signed("test-chain", "precommit", 1200, 1, "precommit", 3*time.Millisecond)
	m.Refused("test-chain", enclaveproto.ReasonDoubleSign)
	m.Refused("test-chain", enclaveproto.ReasonRegression)
	m.Refused("test-chain", "made-up reason")
	m.StatePersisted(2*time.Millisecond, nil)
	m.StatePersisted(40*time.Millisecond, errors.New("disk full"))
	m.ValidatorConnection(true)
	m.ValidatorReconnect()
	m.ValidatorReconnect()
	m.EnclaveUp(true)
	m.CredentialsExpiry(time.Unix(1_700_003_600, 0))

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	code, body := get(t, srv, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: status %d\n%s", code, body)
	}
	wantLines(t, body,
		`# TYPE tmkms_signatures_total counter`,
		`tmkms_signatures_total{chain_id="test-chain",type="prevote"} 1`,
		`tmkms_signatures_total{chain_id="test-chain",type="precommit"} 1`,
		`tmkms_signatures_total{chain_id="test-chain",type="proposal"} 0`,
		`tmkms_refusals_total{chain_id="test-chain",reason="double_sign"} 1`,
		`tmkms_refusals_total{chain_id="test-chain",reason="regression"} 1`,
		`tmkms_refusals_total{chain_id="test-chain",reason="other"} 1`,
		`tmkms_refusals_total{chain_id="test-chain",reason="wrong_chain_id"} 0`,
		`tmkms_refusals_total{chain_id="test-chain",reason="persist_failed"} 0`,
		`# TYPE tmkms_signing_latency_seconds histogram`,
		`tmkms_signing_latency_seconds_bucket{le="0.0005"} 0`,
		`tmkms_signing_latency_seconds_bucket{le="0.001"} 1`,
		`tmkms_signing_latency_seconds_bucket{le="0.005"} 2`,
		`tmkms_signing_latency_seconds_bucket{le="+Inf"} 2`,
		`tmkms_signing_latency_seconds_sum 0.0038`,
		`tmkms_signing_latency_seconds_count 2`,
		`tmkms_last_signed_height 1200`,
		`tmkms_last_signed_round 1`,
		`tmkms_last_signed_step 3`,
		`tmkms_last_signature_timestamp_seconds 1.7000000015e+09`,
		`tmkms_state_persist_seconds_bucket{le="0.0025"} 1`,
		`tmkms_state_persist_seconds_bucket{le="0.05"} 2`,
		`tmkms_state_persist_seconds_count 2`,
		`tmkms_state_persist_failures_total 1`,
		`tmkms_validator_connected 1`,
		`tmkms_validator_reconnects_total 2`,
		`tmkms_enclave_up 1`,
		`tmkms_credentials_expiry_timestamp_seconds 1.7000036e+09`,
		`# TYPE go_goroutines gauge`,
	)

	// Every tmkms_ metric is registered, typed and documented.
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		if name := mf.GetName(); strings.HasPrefix(name, "tmkms_") {
			n++
			if mf.GetHelp() == "" || !strings.Contains(body, "# HELP "+name+" ") {
				t.Errorf("%s has no help text", name)
			}
		}
	}
	if n != 13 {
		t.Errorf("gathered %d tmkms_ metric families, want 13", n)
	}
}

func TestGaugesChange(t *testing.T) {
	m := New(Options{})
	m.ValidatorConnection(true)
	m.ValidatorConnection(false)
	m.EnclaveUp(true)
	m.EnclaveUp(false)
	m.CredentialsExpiry(time.Unix(1_800_000_000, 0))
	m.CredentialsExpiry(time.Time{}) // static credentials: never expire
	m.Signed("c", "proposal", 7, 2, "proposal", -time.Second)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	_, body := get(t, srv, "/metrics")
	wantLines(t, body,
		`tmkms_validator_connected 0`,
		`tmkms_enclave_up 0`,
		`tmkms_credentials_expiry_timestamp_seconds 0`,
		`tmkms_signatures_total{chain_id="c",type="proposal"} 1`,
		`tmkms_last_signed_height 7`,
		`tmkms_last_signed_round 2`,
		`tmkms_last_signed_step 1`,
		`tmkms_signing_latency_seconds_sum 0`, // a negative latency is clamped
	)
	if strings.Contains(body, `reason="`) {
		t.Errorf("refusal series exist without Options.ChainID or a refusal")
	}
}

func TestHealthz(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	m := New(Options{Now: clk.Now, HealthWindow: time.Minute})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	steps := []healthStep{
		{"enclave not yet configured", func() {}, 503, "enclave unreachable"},
		{"grace after start", func() { m.EnclaveUp(true) }, 200, "ok"},
		{"end of grace", func() { clk.Add(time.Minute) }, 200, "ok"},
		{"grace over, never signed", func() { clk.Add(time.Second) }, 503, "no signature for 1m1s (none since start)"},
		{"signed", func() { m.Signed("c", "prevote", 1, 0, "prevote", time.Millisecond) }, 200, "ok"},
		{"within window", func() { clk.Add(30 * time.Second) }, 200, "ok"},
		{"window elapsed", func() { clk.Add(time.Minute) }, 503, "no signature for 1m30s"},
		{"signed again", func() { m.Signed("c", "precommit", 1, 0, "precommit", time.Millisecond) }, 200, "ok"},
		{"enclave down", func() { m.EnclaveUp(false) }, 503, "enclave unreachable"},
		{"enclave down wins over no signature", func() { clk.Add(2 * time.Minute) }, 503, "enclave unreachable"},
		{"enclave back, still no signature", func() { m.EnclaveUp(true) }, 503, "no signature for 2m0s"},
		{"signed after the outage", func() { m.Signed("c", "prevote", 2, 0, "prevote", time.Millisecond) }, 200, "ok"},
	}
	checkHealth(t, srv, steps)
}

func TestHealthWindowDefault(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	m := New(Options{Now: clk.Now})
	m.EnclaveUp(true)
	clk.Add(DefaultHealthWindow)
	if ok, why := m.Health(); !ok {
		t.Fatalf("unhealthy at the end of the default grace: %s", why)
	}
	clk.Add(time.Second)
	if ok, _ := m.Health(); ok {
		t.Fatal("healthy after the default window without a signature")
	}
}

func TestStepValue(t *testing.T) {
	for step, want := range map[signstate.Step]int{signstate.StepPropose: 1, signstate.StepPrevote: 2, signstate.StepPrecommit: 3, signstate.StepNone: 0} {
		if got := StepValue(step.String()); got != want {
			t.Errorf("StepValue(%q) = %d, want %d", step, got, want)
		}
	}
}

func TestServe(t *testing.T) {
	m := New(Options{})
	m.EnclaveUp(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.serve(ctx, ln, nil) }()

	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok\n" {
		t.Fatalf("/healthz: %d %q", resp.StatusCode, b)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after ctx ended")
	}
	if err := m.Serve(context.Background(), ln.Addr().String()+"x", nil); err == nil {
		t.Fatal("Serve on a bad address returned nil")
	}
}

// TestHAMetrics: with [ha], commits are counted by result, the deciding
// instance is marked, and /healthz follows etcd's quorum instead of
// recent signatures (a standby signs nothing).
func TestHAMetrics(t *testing.T) {
	clk := &clock{t: time.Unix(1_000_000, 0)}
	m := New(Options{Now: clk.Now})
	m.EnableHA()
	m.EnclaveUp(true)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	if code, body := get(t, srv, "/healthz"); code != 503 || !strings.Contains(body, "etcd unavailable") {
		t.Fatalf("before any etcd check: %d %q", code, body)
	}
	m.HAHealth(true, 3)
	clk.Add(time.Hour) // no signature for an hour: fine for a standby
	if code, body := get(t, srv, "/healthz"); code != 200 {
		t.Fatalf("etcd up: %d %q", code, body)
	}
	m.HACommit(2*time.Millisecond, CommitWon, "signer-a")
	m.HACommit(3*time.Millisecond, CommitLost, "signer-b")
	_, body := get(t, srv, "/metrics")
	wantLines(t, body,
		`tmkms_ha_commits_total{result="won"} 1`,
		`tmkms_ha_commits_total{result="lost"} 1`,
		`tmkms_ha_commits_total{result="unavailable"} 0`,
		`tmkms_ha_decision_instance{instance="signer-a"} 0`,
		`tmkms_ha_decision_instance{instance="signer-b"} 1`,
		`tmkms_ha_etcd_up 1`,
		`tmkms_ha_instances_alive 3`,
		`tmkms_ha_commit_seconds_count 2`,
	)
	m.Refused("c", enclaveproto.ReasonCluster)
	if code, body := get(t, srv, "/healthz"); code != 503 || !strings.Contains(body, "could not be committed") {
		t.Fatalf("after a cluster refusal: %d %q", code, body)
	}
	m.Signed("c", "prevote", 5, 0, "prevote", time.Millisecond)
	if code, body := get(t, srv, "/healthz"); code != 200 {
		t.Fatalf("signing again: %d %q", code, body)
	}
	m.Refused("c", enclaveproto.ReasonLostRace)
	_, body = get(t, srv, "/metrics")
	wantLines(t, body, `reason="cluster_unavailable"} 1`, `reason="cluster_lost_race"} 1`)
	m.HAHealth(false, 3)
	if code, _ := get(t, srv, "/healthz"); code != 503 {
		t.Fatalf("etcd down: %d", code)
	}
}

// TestHealthzAnchored: an instance of an anchored set is healthy as a
// standby (no signature ever) and unhealthy only while its last decision
// was refused for want of the anchor.
func TestHealthzAnchored(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	m := New(Options{Now: clk.Now, HealthWindow: time.Minute})
	m.EnableAnchor()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	steps := []healthStep{
		{"enclave not yet configured", func() {}, 503, "enclave unreachable"},
		{"standby, long after start", func() { m.EnclaveUp(true); clk.Add(10 * time.Minute) }, 200, "ok"},
		{"anchor unavailable", func() { m.Refused("c", enclaveproto.ReasonCluster) }, 503, "the last decision could not be committed to the cluster (see the enclave's refusal)"},
		{"signed again", func() { clk.Add(time.Second); m.Signed("c", "prevote", 1, 0, "prevote", time.Millisecond) }, 200, "ok"},
		{"refused, then the window passes", func() { clk.Add(time.Second); m.Refused("c", enclaveproto.ReasonCluster); clk.Add(2 * time.Minute) }, 200, "ok"},
	}
	checkHealth(t, srv, steps)
}

// healthStep is an action and the /healthz answer that must follow it.
type healthStep struct {
	name string
	do   func()
	code int
	body string
}

func checkHealth(t *testing.T, srv *httptest.Server, steps []healthStep) {
	t.Helper()
	for _, s := range steps {
		s.do()
		code, body := get(t, srv, "/healthz")
		if code != s.code || body != s.body+"\n" {
			t.Errorf("%s: got %d %q, want %d %q", s.name, code, body, s.code, s.body+"\n")
		}
	}
}
