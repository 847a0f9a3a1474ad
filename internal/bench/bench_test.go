package bench

import (
	"bytes"
	"context"
	"encoding/json"
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
// report holds what it must.
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
	if !testing.Short() {
		checkStack(t, rep)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"(a) filepv", "(b) core", "(b)/(a)", "targets (issue 7)", "fdatasync per signature", rep.Environment.GoVersion} {
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
	if len(rep.Targets) != 5 {
		t.Errorf("targets = %+v", rep.Targets)
	}
}

func TestReportJSON(t *testing.T) {
	subjects := []*subject{fakeSubject(FilePV, 2), fakeSubject(Core, 1)}
	rep := newReport(Environment{CPUs: 2}, Options{Heights: 2}, subjects)
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
	got, err := ParseConfigs("c, a,filepv,CORE,ha")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0] != Stack || got[1] != FilePV || got[2] != Core || got[3] != HA {
		t.Fatalf("got %v", got)
	}
	if _, err := ParseConfigs("a,e"); err == nil || !strings.HasPrefix(err.Error(), "bench: ") {
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
