package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/localmode"
)

// buildEnclave builds tmkms-nitro-enclave from this source tree.
func buildEnclave(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	out := filepath.Join(t.TempDir(), localmode.EnclaveBinaryName)
	cmd := exec.Command("go", "build", "-o", out, "./cmd/tmkms-nitro-enclave")
	cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build tmkms-nitro-enclave: %v\n%s", err, b)
	}
	return out
}

// TestRun runs every configuration for 20 heights and checks that the
// report holds what it must; with -short, only those without the enclave.
func TestRun(t *testing.T) {
	configs := AllConfigs()
	var bin string
	if testing.Short() {
		configs = []Config{FilePV, Core}
	} else {
		bin = buildEnclave(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const heights = 20
	rep, err := Run(ctx, Options{Heights: heights, Warmup: 2, Configs: configs, Dir: t.TempDir(), Enclave: bin, ChunkHeights: 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != len(configs) {
		t.Fatalf("%d results, want %d", len(rep.Results), len(configs))
	}
	for _, res := range rep.Results {
		checkResult(t, res, heights)
	}
	if len(rep.Ratios) != len(configs)-1 || rep.Ratios[0].Name != "(b)/(a)" || rep.Ratios[0].P50 <= 0 {
		t.Errorf("ratios = %+v", rep.Ratios)
	}
	if rep.Environment.CPUs < 1 || rep.Environment.FS == "" || rep.Environment.GoVersion == "" {
		t.Errorf("environment = %+v", rep.Environment)
	}
	want := []string{"(a) filepv", "(b) core", "(b)/(a)", "\ntargets ", "fdatasync per signature", rep.Environment.GoVersion}
	if !testing.Short() {
		checkStack(t, rep)
		checkAnchor(t, rep, heights)
		want = append(want, "(e) anchor", "(e)/(c)", "etcd-txn", "anchor goal: anchored p50 ≤ unanchored p50 + 1.2 × raw etcd transaction p50")
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range want {
		if !strings.Contains(text.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, text.String())
		}
	}
}

func checkResult(t *testing.T, res Result, heights int) {
	t.Helper()
	l := res.Latency
	if l.Count != heights*RequestsPerHeight || l.P50 <= 0 || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.Max || res.RequestsPerSec <= 0 {
		t.Errorf("%s: latency %+v, %.0f req/s", res.ID, l, res.RequestsPerSec)
	}
	for _, k := range kinds {
		if res.ByType[k].Count != heights {
			t.Errorf("%s: %d %s requests, want %d", res.ID, res.ByType[k].Count, k, heights)
		}
	}
	if res.Durability == "" {
		t.Errorf("%s: durability not described", res.ID)
	}
}

func checkStack(t *testing.T, rep *Report) {
	t.Helper()
	s := rep.Stack
	switch {
	case s == nil:
		t.Fatal("no stack information")
	case s.MemoryError != "" || s.EnclavePID == 0 || s.EnclavePeakRSSBytes < 1<<20 || s.EnclaveRSSBytes > s.EnclavePeakRSSBytes:
		t.Errorf("enclave memory: %+v", s)
	case s.FirstSignatureMs <= 0 || s.ConfiguredMs <= 0 || s.ConnectedMs < s.EnclaveStartedMs || s.FirstSignatureMs < s.ConnectedMs:
		t.Errorf("start-up times: %+v", s)
	}
	if len(rep.Targets) != 6 {
		t.Errorf("targets = %+v", rep.Targets)
	}
}

// checkAnchor checks what (e) adds: the raw etcd transactions, as many as
// (e)'s requests, and the anchor goal computed from them and (c).
func checkAnchor(t *testing.T, rep *Report, heights int) {
	t.Helper()
	x := rep.EtcdTxn
	if x == nil {
		t.Fatal("no etcd-txn measurement")
	}
	if l := x.Latency; x.ID != etcdTxnID || l.Count != heights*RequestsPerHeight || l.P50 <= 0 || l.P50 > l.P99 || x.PerSec <= 0 || x.ValueBytes != etcdTxnValueSize {
		t.Errorf("etcd-txn: %+v", x)
	}
	g := rep.AnchorGoal
	if g == nil {
		t.Fatal("no anchor goal")
	}
	c, e := resultOf(t, rep, Stack), resultOf(t, rep, Anchor)
	if g.AnchoredP50 != e.Latency.P50 || g.UnanchoredP50 != c.Latency.P50 || g.EtcdTxnP50 != x.Latency.P50 || g.LimitMs != c.Latency.P50+1.2*x.Latency.P50 {
		t.Errorf("anchor goal %+v from (c) %+v, (e) %+v, etcd-txn %+v", g, c.Latency, e.Latency, x.Latency)
	}
	last := rep.Targets[len(rep.Targets)-1]
	if last.Name != anchorGoalName || last.Met != g.Met || last.Unit != "ms" {
		t.Errorf("the anchor goal's target: %+v", last)
	}
}

func resultOf(t *testing.T, rep *Report, c Config) Result {
	t.Helper()
	for _, res := range rep.Results {
		if res.ID == c.ID() {
			return res
		}
	}
	t.Fatalf("no result for %s", c)
	return Result{}
}

func TestReportJSON(t *testing.T) {
	subjects := []*subject{fakeSubject(FilePV, 2), fakeSubject(Core, 1)}
	rep := newReport(Environment{CPUs: 2}, Options{Heights: 2}, subjects, nil)
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Ratios) != 1 || back.Ratios[0].P50 != 0.5 || len(back.Targets) != 1 || !back.Targets[0].Met {
		t.Fatalf("round trip: %s", b)
	}
	if len(rep.Missed()) != 0 {
		t.Fatalf("missed: %+v", rep.Missed())
	}
}

// TestAnchorGoal checks the anchor goal on made-up latencies: (e) may take
// 1.2 etcd transactions more than (c), and the goal counts only when both
// ran.
func TestAnchorGoal(t *testing.T) {
	for _, tc := range []struct {
		anchored time.Duration
		met      bool
	}{{3, true}, {4, false}} {
		// Limit: 1 ms + 1.2 × 2 ms = 3.4 ms.
		stack := fakeSubject(Stack, 1)
		stack.stack = &stackRun{memErr: errors.New("not measured"), firstSignature: time.Second}
		rep := newReport(Environment{}, Options{Heights: 2}, []*subject{stack, fakeAnchor(tc.anchored, 2)}, nil)
		g := rep.AnchorGoal
		if g == nil || g.LimitMs != 3.4 || g.AnchoredP50 != float64(tc.anchored) || g.Met != tc.met {
			t.Fatalf("(e) at %d ms: goal %+v", tc.anchored, g)
		}
		if missed := rep.Missed(); tc.met != (len(missed) == 0) || !tc.met && missed[0].Name != anchorGoalName {
			t.Errorf("(e) at %d ms: missed %+v", tc.anchored, missed)
		}
		var text bytes.Buffer
		if err := rep.WriteText(&text); err != nil {
			t.Fatal(err)
		}
		line := fmt.Sprintf("(e) p50 %d.000 ms ≤ (c) p50 1.000 ms + 1.2 × etcd-txn p50 2.000 ms = 3.400 ms: %s", tc.anchored, verdict(tc.met))
		// The targets table leaves the anchor goal to its own section.
		if !strings.Contains(text.String(), line) || strings.Contains(text.String(), anchorGoalName) {
			t.Errorf("report lacks %q or has the anchor goal in the targets table:\n%s", line, text.String())
		}
	}
	alone := newReport(Environment{}, Options{Heights: 2}, []*subject{fakeAnchor(9, 2)}, nil)
	if alone.AnchorGoal != nil || len(alone.Targets) != 0 || alone.EtcdTxn == nil {
		t.Fatalf("without (c): goal %+v, targets %+v, etcd-txn %+v", alone.AnchorGoal, alone.Targets, alone.EtcdTxn)
	}
	b, err := json.Marshal(alone)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"etcd_txn":{"id":"etcd-txn"`) || strings.Contains(string(b), "anchor_goal") {
		t.Errorf("JSON without (c): %s", b)
	}
}

// fakeAnchor is (e) at scale ms a request, with raw transactions of txn ms.
func fakeAnchor(scale, txn time.Duration) *subject {
	s := fakeSubject(Anchor, scale)
	s.txn = &etcdTxn{lat: []time.Duration{txn * time.Millisecond, txn * time.Millisecond}, wall: time.Second}
	return s
}

// fakeSubject has taken scale ms for every request of two heights.
func fakeSubject(c Config, scale time.Duration) *subject {
	s := &subject{cfg: c, wall: time.Second}
	for i := range s.lat {
		s.lat[i] = []time.Duration{scale * time.Millisecond, scale * time.Millisecond}
	}
	return s
}

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	s := Summarize(d)
	if s.Count != 100 || s.P50 != 50 || s.P90 != 90 || s.P99 != 99 || s.Max != 100 || s.Mean != 50.5 {
		t.Fatalf("summary = %+v", s)
	}
	if one := Summarize([]time.Duration{time.Millisecond}); one.P50 != 1 || one.P99 != 1 {
		t.Fatalf("one sample: %+v", one)
	}
	if (Summarize(nil) != Summary{}) {
		t.Fatal("empty input must give the zero summary")
	}
}

func TestParseConfigs(t *testing.T) {
	got, err := ParseConfigs("c, a,filepv,CORE,ha,e,Anchor")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || got[0] != Stack || got[1] != FilePV || got[2] != Core || got[3] != HA || got[4] != Anchor {
		t.Fatalf("got %v", got)
	}
	if !Anchor.NeedsEnclave() || Anchor.String() != "(e) anchor" {
		t.Fatalf("anchor: %s, needs the enclave: %v", Anchor, Anchor.NeedsEnclave())
	}
	if _, err := ParseConfigs("a,f"); err == nil || !strings.HasPrefix(err.Error(), "bench: ") || !strings.Contains(err.Error(), "e|anchor") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseMountInfo(t *testing.T) {
	m, ok := parseMountInfo(`36 35 98:0 / /mnt\040x rw,noatime shared:1 - ext4 /dev/vda rw,errors=remount-ro`)
	if !ok || m.point != "/mnt x" || m.fsType != "ext4" || m.source != "/dev/vda" || m.options != "rw,noatime" {
		t.Fatalf("got %+v, %v", m, ok)
	}
	if _, ok := parseMountInfo("garbage"); ok {
		t.Fatal("garbage parsed")
	}
	if !within("/tmp/x", "/") || !within("/tmp/x", "/tmp") || within("/tmpx", "/tmp") {
		t.Fatal("within")
	}
}

func TestKB(t *testing.T) {
	if got := kB("\t   1234 kB"); got != 1234<<10 {
		t.Fatalf("kB = %d", got)
	}
}
