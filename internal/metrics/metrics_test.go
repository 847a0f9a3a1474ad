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

	dto "github.com/prometheus/client_model/go"

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

// newChain returns a Set with the one chain c registered, and c.
func newChain(opts Options, c string) (*Set, *Metrics) {
	s := NewSet(opts)
	return s, s.Chain(c)
}

func TestExposition(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	s, m := newChain(Options{Now: clk.Now}, "test-chain")
	NewSet(Options{}).Chain("test-chain") // a second Set must not collide: no global registry

	m.Signed("prevote", 1200, 0, "prevote", 800*time.Microsecond)
	clk.Add(1500 * time.Millisecond)
	m.Signed("precommit", 1200, 1, "precommit", 3*time.Millisecond)
	m.Refused(enclaveproto.ReasonDoubleSign)
	m.Refused(enclaveproto.ReasonRegression)
	m.Refused("made-up reason")
	m.StatePersisted(2*time.Millisecond, nil)
	m.StatePersisted(40*time.Millisecond, errors.New("disk full"))
	m.ValidatorConnection(true)
	m.ValidatorReconnect()
	m.ValidatorReconnect()
	m.EnclaveUp(true)
	m.CredentialsExpiry(time.Unix(1_700_003_600, 0))

	srv := httptest.NewServer(s.Handler())
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
		`tmkms_signing_latency_seconds_bucket{chain_id="test-chain",le="0.0005"} 0`,
		`tmkms_signing_latency_seconds_bucket{chain_id="test-chain",le="0.001"} 1`,
		`tmkms_signing_latency_seconds_bucket{chain_id="test-chain",le="0.005"} 2`,
		`tmkms_signing_latency_seconds_bucket{chain_id="test-chain",le="+Inf"} 2`,
		`tmkms_signing_latency_seconds_sum{chain_id="test-chain"} 0.0038`,
		`tmkms_signing_latency_seconds_count{chain_id="test-chain"} 2`,
		`tmkms_last_signed_height{chain_id="test-chain"} 1200`,
		`tmkms_last_signed_round{chain_id="test-chain"} 1`,
		`tmkms_last_signed_step{chain_id="test-chain"} 3`,
		`tmkms_last_signature_timestamp_seconds{chain_id="test-chain"} 1.7000000015e+09`,
		`tmkms_state_persist_seconds_bucket{chain_id="test-chain",le="0.0025"} 1`,
		`tmkms_state_persist_seconds_bucket{chain_id="test-chain",le="0.05"} 2`,
		`tmkms_state_persist_seconds_count{chain_id="test-chain"} 2`,
		`tmkms_state_persist_failures_total{chain_id="test-chain"} 1`,
		`tmkms_validator_connected{chain_id="test-chain"} 1`,
		`tmkms_validator_reconnects_total{chain_id="test-chain"} 2`,
		`tmkms_enclave_up{chain_id="test-chain"} 1`,
		`tmkms_credentials_expiry_timestamp_seconds{chain_id="test-chain"} 1.7000036e+09`,
		`# TYPE go_goroutines gauge`,
	)

	// Every tmkms_ metric is registered, typed and documented, and every
	// series of it carries the chain's label.
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, "tmkms_") {
			continue
		}
		n++
		if mf.GetHelp() == "" || !strings.Contains(body, "# HELP "+name+" ") {
			t.Errorf("%s has no help text", name)
		}
		for _, series := range mf.GetMetric() {
			if got := labelValue(series, "chain_id"); got != "test-chain" {
				t.Errorf("%s%v: chain_id %q, want test-chain", name, series.GetLabel(), got)
			}
		}
	}
	if n != 13 {
		t.Errorf("gathered %d tmkms_ metric families, want 13", n)
	}
}

func TestGaugesChange(t *testing.T) {
	s, m := newChain(Options{}, "c")
	m.ValidatorConnection(true)
	m.ValidatorConnection(false)
	m.EnclaveUp(true)
	m.EnclaveUp(false)
	m.CredentialsExpiry(time.Unix(1_800_000_000, 0))
	m.CredentialsExpiry(time.Time{}) // static credentials: never expire
	m.Signed("proposal", 7, 2, "proposal", -time.Second)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	_, body := get(t, srv, "/metrics")
	wantLines(t, body,
		`tmkms_validator_connected{chain_id="c"} 0`,
		`tmkms_enclave_up{chain_id="c"} 0`,
		`tmkms_credentials_expiry_timestamp_seconds{chain_id="c"} 0`,
		`tmkms_signatures_total{chain_id="c",type="proposal"} 1`,
		`tmkms_last_signed_height{chain_id="c"} 7`,
		`tmkms_last_signed_round{chain_id="c"} 2`,
		`tmkms_last_signed_step{chain_id="c"} 1`,
		`tmkms_signing_latency_seconds_sum{chain_id="c"} 0`, // a negative latency is clamped
	)
	// The refusal series exist at 0 before any refusal.
	for _, r := range enclaveproto.Reasons() {
		wantLines(t, body, `tmkms_refusals_total{chain_id="c",reason="`+string(r)+`"} 0`)
	}
}

// TestTwoChains: two chains on one Set have their own series, each
// labelled with its chain id, and an event on one moves nothing of the
// other.
func TestTwoChains(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	s := NewSet(Options{Now: clk.Now})
	a, b := s.Chain("chain-a"), s.Chain("chain-b")
	if a == b {
		t.Fatal("two chains share one Metrics")
	}
	if s.Chain("chain-a") != a || s.Lookup("chain-a") != a || s.Lookup("chain-b") != b {
		t.Fatal("Chain or Lookup of a registered chain does not return its Metrics")
	}
	if a.ChainID() != "chain-a" || b.ChainID() != "chain-b" {
		t.Fatalf("ChainID: %q, %q", a.ChainID(), b.ChainID())
	}
	a.EnableHA()
	a.HACommit(time.Millisecond, CommitWon, "signer-a")
	a.Signed("precommit", 1200, 1, "precommit", 3*time.Millisecond)
	a.Refused(enclaveproto.ReasonDoubleSign)
	a.StatePersisted(time.Millisecond, errors.New("disk full"))
	a.ValidatorConnection(true)
	a.EnclaveUp(true)
	b.Signed("prevote", 77, 0, "prevote", time.Millisecond)

	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	_, body := get(t, srv, "/metrics")
	for _, c := range []struct {
		series string
		want   string
	}{
		{`tmkms_signatures_total{chain_id="chain-a",type="precommit"}`, "1"},
		{`tmkms_signatures_total{chain_id="chain-b",type="precommit"}`, "0"},
		{`tmkms_signatures_total{chain_id="chain-a",type="prevote"}`, "0"},
		{`tmkms_signatures_total{chain_id="chain-b",type="prevote"}`, "1"},
		{`tmkms_refusals_total{chain_id="chain-a",reason="double_sign"}`, "1"},
		{`tmkms_refusals_total{chain_id="chain-b",reason="double_sign"}`, "0"},
		{`tmkms_last_signed_height{chain_id="chain-a"}`, "1200"},
		{`tmkms_last_signed_height{chain_id="chain-b"}`, "77"},
		{`tmkms_last_signed_step{chain_id="chain-a"}`, "3"},
		{`tmkms_last_signed_step{chain_id="chain-b"}`, "2"},
		{`tmkms_signing_latency_seconds_count{chain_id="chain-a"}`, "1"},
		{`tmkms_signing_latency_seconds_count{chain_id="chain-b"}`, "1"},
		{`tmkms_state_persist_failures_total{chain_id="chain-a"}`, "1"},
		{`tmkms_state_persist_failures_total{chain_id="chain-b"}`, "0"},
		{`tmkms_validator_connected{chain_id="chain-a"}`, "1"},
		{`tmkms_validator_connected{chain_id="chain-b"}`, "0"},
		{`tmkms_enclave_up{chain_id="chain-a"}`, "1"},
		{`tmkms_enclave_up{chain_id="chain-b"}`, "0"},
		{`tmkms_ha_commits_total{chain_id="chain-a",result="won"}`, "1"},
		{`tmkms_ha_decision_instance{chain_id="chain-a",instance="signer-a"}`, "1"},
	} {
		wantLines(t, body, c.series+" "+c.want)
	}
	// chain-b has no [ha]: none of its series exists.
	if strings.Contains(body, `tmkms_ha_commits_total{chain_id="chain-b"`) {
		t.Errorf("chain-b has HA series without EnableHA")
	}
	// One Go and one process collector for the Set, whatever its chains.
	if n := strings.Count(body, "\ngo_goroutines "); n != 1 {
		t.Errorf("go_goroutines exposed %d times, want 1", n)
	}
	if s.Lookup("chain-c") != nil || s.Lookup("") != nil {
		t.Error("Lookup of a chain never registered is not nil")
	}
	if _, body := get(t, srv, "/metrics"); strings.Contains(body, "chain-c") {
		t.Error("Lookup of an unknown chain created series")
	}
}

// TestSetHealth: the Set is healthy when every chain is, and its reason
// names each unhealthy chain with that chain's reason.
func TestSetHealth(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	s := NewSet(Options{Now: clk.Now, HealthWindow: time.Minute})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	var a, b *Metrics
	steps := []struct {
		name string
		do   func()
		code int
		body string
	}{
		{"no chain", func() {}, 503, "no chain configured"},
		{"chain-b registered, enclave not configured", func() { b = s.Chain("chain-b") }, 503, "chain-b: enclave unreachable"},
		{"chain-a registered after chain-b", func() { a = s.Chain("chain-a") }, 503, "chain-a: enclave unreachable; chain-b: enclave unreachable"},
		{"chain-a's enclave up", func() { a.EnclaveUp(true) }, 503, "chain-b: enclave unreachable"},
		{"both up", func() { b.EnclaveUp(true) }, 200, "ok"},
		{"grace over, chain-a signed", func() {
			clk.Add(time.Minute + time.Second)
			a.Signed("prevote", 1, 0, "prevote", time.Millisecond)
		}, 503, "chain-b: no signature for 1m1s (none since start)"},
		{"chain-b signs", func() { b.Signed("prevote", 1, 0, "prevote", time.Millisecond) }, 200, "ok"},
		{"chain-a stops signing", func() {
			clk.Add(2 * time.Minute)
			b.Signed("prevote", 2, 0, "prevote", time.Millisecond)
		}, 503, "chain-a: no signature for 2m0s"},
		{"chain-b's enclave down too", func() { b.EnclaveUp(false) }, 503, "chain-a: no signature for 2m0s; chain-b: enclave unreachable"},
	}
	for _, st := range steps {
		st.do()
		ok, why := s.Health()
		if ok != (st.code == 200) || !ok && why != st.body {
			t.Errorf("%s: Health() = %v %q, want %q", st.name, ok, why, st.body)
		}
		code, body := get(t, srv, "/healthz")
		if code != st.code || body != st.body+"\n" {
			t.Errorf("%s: /healthz %d %q, want %d %q", st.name, code, body, st.code, st.body+"\n")
		}
	}
}

func TestChainEmptyIDPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Chain(\"\") did not panic")
		}
	}()
	NewSet(Options{}).Chain("")
}

// TestChainConcurrent: concurrent first calls of Chain register the chain
// once (a second registration would panic) and return one value.
func TestChainConcurrent(t *testing.T) {
	s := NewSet(Options{})
	got := make([]*Metrics, 8)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() { got[i] = s.Chain("c") })
	}
	wg.Wait()
	for _, m := range got {
		if m != got[0] || m == nil {
			t.Fatal("concurrent Chain calls returned different values")
		}
	}
}

func TestHealthz(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	s, m := newChain(Options{Now: clk.Now, HealthWindow: time.Minute}, "c")
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	steps := []healthStep{
		{"enclave not yet configured", func() {}, 503, "enclave unreachable"},
		{"grace after start", func() { m.EnclaveUp(true) }, 200, "ok"},
		{"end of grace", func() { clk.Add(time.Minute) }, 200, "ok"},
		{"grace over, never signed", func() { clk.Add(time.Second) }, 503, "no signature for 1m1s (none since start)"},
		{"signed", func() { m.Signed("prevote", 1, 0, "prevote", time.Millisecond) }, 200, "ok"},
		{"within window", func() { clk.Add(30 * time.Second) }, 200, "ok"},
		{"window elapsed", func() { clk.Add(time.Minute) }, 503, "no signature for 1m30s"},
		{"signed again", func() { m.Signed("precommit", 1, 0, "precommit", time.Millisecond) }, 200, "ok"},
		{"enclave down", func() { m.EnclaveUp(false) }, 503, "enclave unreachable"},
		{"enclave down wins over no signature", func() { clk.Add(2 * time.Minute) }, 503, "enclave unreachable"},
		{"enclave back, still no signature", func() { m.EnclaveUp(true) }, 503, "no signature for 2m0s"},
		{"signed after the outage", func() { m.Signed("prevote", 2, 0, "prevote", time.Millisecond) }, 200, "ok"},
	}
	checkHealth(t, srv, m, steps)
}

// TestHealthGraceFromRegistration: a chain registered after others has
// its own grace period, from its registration.
func TestHealthGraceFromRegistration(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	s := NewSet(Options{Now: clk.Now, HealthWindow: time.Minute})
	s.Chain("early").EnclaveUp(true)
	clk.Add(50 * time.Second)
	late := s.Chain("late")
	late.EnclaveUp(true)
	clk.Add(20 * time.Second)
	if ok, why := late.Health(); !ok {
		t.Errorf("late chain unhealthy within its grace: %s", why)
	}
	if ok, why := s.Health(); ok || why != "early: no signature for 1m10s (none since start)" {
		t.Errorf("Set.Health() = %v %q, want the early chain's grace over", ok, why)
	}
}

func TestHealthWindowDefault(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	_, m := newChain(Options{Now: clk.Now}, "c")
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
	s, m := newChain(Options{}, "c")
	m.EnclaveUp(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.serve(ctx, ln, nil) }()

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
	if err := s.Serve(context.Background(), ln.Addr().String()+"x", nil); err == nil {
		t.Fatal("Serve on a bad address returned nil")
	}
}

// TestHAMetrics: with [ha], commits are counted by result, the deciding
// instance is marked, and /healthz follows etcd's quorum instead of
// recent signatures (a standby signs nothing).
func TestHAMetrics(t *testing.T) {
	clk := &clock{t: time.Unix(1_000_000, 0)}
	s, m := newChain(Options{Now: clk.Now}, "c")
	m.EnableHA()
	m.EnableHA() // a second call registers nothing (it would panic)
	m.EnclaveUp(true)
	srv := httptest.NewServer(s.Handler())
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
		`tmkms_ha_commits_total{chain_id="c",result="won"} 1`,
		`tmkms_ha_commits_total{chain_id="c",result="lost"} 1`,
		`tmkms_ha_commits_total{chain_id="c",result="unavailable"} 0`,
		`tmkms_ha_decision_instance{chain_id="c",instance="signer-a"} 0`,
		`tmkms_ha_decision_instance{chain_id="c",instance="signer-b"} 1`,
		`tmkms_ha_etcd_up{chain_id="c"} 1`,
		`tmkms_ha_instances_alive{chain_id="c"} 3`,
		`tmkms_ha_commit_seconds_count{chain_id="c"} 2`,
	)
	m.Refused(enclaveproto.ReasonCluster)
	if code, body := get(t, srv, "/healthz"); code != 503 || !strings.Contains(body, "could not be committed") {
		t.Fatalf("after a cluster refusal: %d %q", code, body)
	}
	m.Signed("prevote", 5, 0, "prevote", time.Millisecond)
	if code, body := get(t, srv, "/healthz"); code != 200 {
		t.Fatalf("signing again: %d %q", code, body)
	}
	m.Refused(enclaveproto.ReasonLostRace)
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
	s, m := newChain(Options{Now: clk.Now, HealthWindow: time.Minute}, "c")
	m.EnableAnchor()
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	steps := []healthStep{
		{"enclave not yet configured", func() {}, 503, "enclave unreachable"},
		{"standby, long after start", func() { m.EnclaveUp(true); clk.Add(10 * time.Minute) }, 200, "ok"},
		{"anchor unavailable", func() { m.Refused(enclaveproto.ReasonCluster) }, 503, "the last decision could not be committed to the cluster (see the enclave's refusal)"},
		{"signed again", func() { clk.Add(time.Second); m.Signed("prevote", 1, 0, "prevote", time.Millisecond) }, 200, "ok"},
		{"refused, then the window passes", func() { clk.Add(time.Second); m.Refused(enclaveproto.ReasonCluster); clk.Add(2 * time.Minute) }, 200, "ok"},
	}
	checkHealth(t, srv, m, steps)
}

// healthStep is an action and the chain's health that must follow it: the
// /healthz answer of a Set with that one chain, its reason the chain's.
type healthStep struct {
	name string
	do   func()
	code int
	body string
}

func checkHealth(t *testing.T, srv *httptest.Server, m *Metrics, steps []healthStep) {
	t.Helper()
	for _, s := range steps {
		s.do()
		ok, why := m.Health()
		if ok != (s.code == 200) || !ok && why != s.body {
			t.Errorf("%s: Health() = %v %q, want %q", s.name, ok, why, s.body)
		}
		want := s.body + "\n"
		if s.code != 200 {
			want = m.ChainID() + ": " + want
		}
		code, body := get(t, srv, "/healthz")
		if code != s.code || body != want {
			t.Errorf("%s: /healthz %d %q, want %d %q", s.name, code, body, s.code, want)
		}
	}
}

// labelValue returns the value of series' label name, "" if it has none.
func labelValue(series *dto.Metric, name string) string {
	for _, l := range series.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
