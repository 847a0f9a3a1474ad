package devcli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/bench"
	"github.com/tmkms-nitro/tmkms-nitro/internal/cli"
)

// TestBench runs the bench command for a few heights and reads its JSON
// report; the stack and anchor configurations, which need the enclave
// program built, are skipped with -short.
func TestBench(t *testing.T) {
	args := []string{"--heights", "5", "--warmup", "1", "--json", "--dir", t.TempDir()}
	want := 4
	if testing.Short() {
		args, want = append(args, "--only", "a,b"), 2
	} else {
		args = append(args, "--only", "a,b,c,e", "--enclave", buildEnclaveForTest(t))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	env := &Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
	if err := runBench(ctx, env, args); err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr.String())
	}
	var rep bench.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("output is not a JSON report: %v\n%s", err, stdout.String())
	}
	if len(rep.Results) != want || rep.Heights != 5 || rep.Results[0].Latency.Count != 15 || rep.Environment.CPUs < 1 {
		t.Fatalf("report: %+v", rep)
	}
	if !testing.Short() && (rep.EtcdTxn == nil || rep.EtcdTxn.Latency.Count != 15 || rep.AnchorGoal == nil) {
		t.Fatalf("report without the etcd-txn round trips or the anchor goal: %+v", rep)
	}
	if f := rep.Footprint; f == nil || f.NotMeasured != "" || f.EnclavePackages <= 100 {
		t.Errorf("footprint not measured in the source tree: %+v", f)
	}
	if !strings.Contains(stderr.String(), "measuring") {
		t.Errorf("no progress on stderr: %q", stderr.String())
	}
}

func TestBenchUsage(t *testing.T) {
	for _, args := range [][]string{{"--heights", "0"}, {"--warmup", "-1"}, {"--only", "a,x"}, {"extra"}} {
		var stderr bytes.Buffer
		err := runBench(context.Background(), &Env{Stdout: &bytes.Buffer{}, Stderr: &stderr}, args)
		if !errors.Is(err, cli.ErrUsage) || !strings.Contains(stderr.String(), "Usage:") {
			t.Errorf("%q: err = %v, stderr %q", args, err, stderr.String())
		}
	}
}

// TestBenchOnlyAnchor: (e) is named e or anchor, needs the enclave, and
// an unknown name's error lists it.
func TestBenchOnlyAnchor(t *testing.T) {
	for only, want := range map[string][]bench.Config{
		"e":         {bench.Anchor},
		"anchor":    {bench.Anchor},
		"c, ANCHOR": {bench.Stack, bench.Anchor},
		"c,d,e":     {bench.Stack, bench.HA, bench.Anchor},
	} {
		o, err := benchOptions(5, 1, only)
		if err != nil || !slices.Equal(o.Configs, want) || !bench.Anchor.NeedsEnclave() {
			t.Errorf("--only %q: %v, %v", only, o.Configs, err)
		}
	}
	var stderr bytes.Buffer
	err := runBench(context.Background(), &Env{Stdout: &bytes.Buffer{}, Stderr: &stderr}, []string{"--only", "c,f"})
	if !errors.Is(err, cli.ErrUsage) || !strings.Contains(stderr.String(), "e|anchor") {
		t.Errorf("--only c,f: err = %v, stderr %q", err, stderr.String())
	}
}

func buildEnclaveForTest(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	out := filepath.Join(t.TempDir(), "tmkms-nitro-enclave")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/tmkms-nitro-enclave")
	cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build tmkms-nitro-enclave: %v\n%s", err, b)
	}
	return out
}
