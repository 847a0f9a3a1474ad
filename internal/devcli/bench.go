package devcli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"slices"

	"github.com/tmkms-nitro/tmkms-nitro/internal/bench"
	"github.com/tmkms-nitro/tmkms-nitro/internal/cli"
)

func runBench(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "bench", "[--heights N] [--warmup N] [--only a,b,c,d,e] [--json] [--dir DIR]",
		"Measures signing latency as a CometBFT node sees it (CometBFT v1.0's own privval client code on a unix\n"+
			"socket; per height a proposal, a prevote and a precommit with a vote extension, one at a time) for:\n"+
			"  (a) filepv  CometBFT's FilePV behind its own SignerServer: the baseline\n"+
			"  (b) core    this project's signer core: signer + state file (fdatasync) + privval handler\n"+
			"  (c) stack   the whole local stack: local init, local start (helper, enclave process, local KMS)\n"+
			"  (d) ha      (c) with [ha]: each decision committed to a 3-member etcd cluster run in this process\n"+
			"  (e) anchor  (c) with an anchor: the enclave commits each decision to such a cluster itself, over TLS,\n"+
			"              the helper relaying bytes; with it, etcd-txn: raw compare-and-swap round trips on that cluster\n"+
			"in one run, taking turns, and prints p50/p90/p99/max, req/s, the ratios to (a) (and (d)/(c), (e)/(c)), the\n"+
			"time from local start to the first signature, and the enclave's footprint: the packages it links and its\n"+
			"binary's size (go list and go build in this source tree, built as deploy/enclave/Dockerfile builds it),\n"+
			"its peak RSS, and the packages tmkms-nitro-helper links. It checks them against their targets, and with\n"+
			"(c) and (e) against the anchor goal: (e) p50 ≤ (c) p50 + 1.2 × etcd-txn p50.")
	heights := fs.Int("heights", 300, "measured heights per configuration (3 requests each)")
	warmup := fs.Int("warmup", 20, "heights signed first and not measured")
	only := fs.String("only", "a,b,c", "configurations to run: a|filepv, b|core, c|stack, d|ha, e|anchor, comma-separated")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	dir := fs.String("dir", "", "where to put the state files (default: the system's temp dir); its filesystem decides the cost of a durable write")
	keep := fs.Bool("keep", false, "keep the state files, keys and logs")
	enclaveBin := fs.String("enclave", "", "path of tmkms-nitro-enclave (default: next to this program, on $PATH, or built from the source tree)")
	check := fs.Bool("check", false, "exit with status 1 when a target is missed (the anchor goal only when (c) and (e) ran, the footprint's only when measured)")
	verbose := fs.Bool("v", false, "show the helper's, the enclave's and the signers' logs")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (node side, helper, signer core, FilePV) to `FILE`")
	traceFile := fs.String("trace", "", "write an execution trace of this process to `FILE`")
	if err := cli.Parse(fs, args, 0); err != nil {
		return err
	}
	o, err := benchOptions(*heights, *warmup, *only)
	if err != nil {
		fmt.Fprintf(env.Stderr, "%s: error: %v\n", prog, err)
		fs.Usage()
		return cli.ErrUsage
	}
	o.Dir, o.Keep, o.Progress, o.Footprint = *dir, *keep, env.Stderr, true
	if *verbose {
		o.Log = slog.New(slog.NewTextHandler(env.Stderr, nil))
	}
	if slices.ContainsFunc(o.Configs, bench.Config.NeedsEnclave) {
		bin, cleanup, err := benchEnclave(ctx, env, *enclaveBin)
		if err != nil {
			return hintFor(err)
		}
		defer cleanup()
		o.Enclave = bin
	}
	stop, err := startProfiles(*cpuProfile, *traceFile)
	if err != nil {
		return err
	}
	rep, err := bench.Run(ctx, o)
	if perr := stop(); err == nil {
		err = perr
	}
	if err != nil {
		return err
	}
	return printBench(env.Stdout, rep, *asJSON, *check)
}

func benchOptions(heights, warmup int, only string) (bench.Options, error) {
	switch {
	case heights < 1:
		return bench.Options{}, errors.New("--heights must be at least 1")
	case warmup < 0:
		return bench.Options{}, errors.New("--warmup cannot be negative")
	}
	configs, err := bench.ParseConfigs(only)
	if err != nil {
		return bench.Options{}, err
	}
	return bench.Options{Heights: heights, Warmup: warmup, Configs: configs}, nil
}

// benchEnclave finds the enclave program as demo does, building it from
// the source tree if needed into a directory removed by cleanup. Its
// messages go to stderr, so that --json output stays clean.
func benchEnclave(ctx context.Context, env *Env, path string) (bin string, cleanup func(), err error) {
	tmp, err := os.MkdirTemp("", "tmkms-bench-bin-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(tmp) }
	bin, err = demoEnclave(ctx, &Env{Stdin: env.Stdin, Stdout: env.Stderr, Stderr: env.Stderr, Getenv: env.Getenv}, path, tmp)
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return bin, cleanup, nil
}

// startProfiles starts the requested CPU profile and execution trace of
// this process; stop ends them. The enclave is another process: profile it
// with perf (perf record -g -p PID).
func startProfiles(cpu, tr string) (stop func() error, err error) {
	var closers []func() error
	stop = func() error {
		var errs []error
		for i := len(closers) - 1; i >= 0; i-- {
			errs = append(errs, closers[i]())
		}
		return errors.Join(errs...)
	}
	if cpu != "" {
		f, err := os.Create(cpu)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("bench: cpu profile: %w", err)
		}
		closers = append(closers, func() error { pprof.StopCPUProfile(); return f.Close() })
	}
	if tr != "" {
		f, err := os.Create(tr)
		if err != nil {
			stop()
			return nil, err
		}
		if err := trace.Start(f); err != nil {
			f.Close()
			stop()
			return nil, fmt.Errorf("bench: trace: %w", err)
		}
		closers = append(closers, func() error { trace.Stop(); return f.Close() })
	}
	return stop, nil
}

func printBench(w io.Writer, rep *bench.Report, asJSON, check bool) error {
	var err error
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = rep.WriteText(w)
	}
	if err != nil {
		return err
	}
	if missed := rep.Missed(); check && len(missed) > 0 {
		return fmt.Errorf("%d of %d targets missed (first: %s)", len(missed), len(rep.Targets), missed[0].Name)
	}
	return nil
}
