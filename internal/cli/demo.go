package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cometbft/cometbft/crypto/ed25519"

	"github.com/tmkms-nitro/tmkms-nitro/internal/bench"
	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/localmode"
	"github.com/tmkms-nitro/tmkms-nitro/internal/localnode"
	"github.com/tmkms-nitro/tmkms-nitro/internal/metrics"
	"github.com/tmkms-nitro/tmkms-nitro/internal/pubkey"
)

func runDemo(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "demo", "[--blocks N] [--home DIR]",
		"Runs the whole system on this machine: a local CometBFT validator (in-process, v1.0, kvstore app) whose\n"+
			"only key was generated inside the enclave process and sealed by the local KMS, which releases it only to\n"+
			"an enclave binary with the PCR0 its key policy pins. Shows a line per signature; stops after N blocks.")
	blocks := fs.Int("blocks", 20, "stop after this many blocks")
	home := fs.String("home", "", "keep the files here (default: a temporary directory, removed at exit)")
	enclaveBin := fs.String("enclave", "", "path of tmkms-nitro-enclave (default: next to this program, on $PATH, or built from the source tree)")
	verbose := fs.Bool("v", false, "also show the helper's and the enclave's logs")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *blocks < 1 {
		return errors.New("--blocks must be at least 1")
	}
	dir := *home
	if dir == "" {
		tmp, err := os.MkdirTemp("", "tmkms-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	bin, err := demoEnclave(ctx, env, *enclaveBin, dir)
	if err != nil {
		return hintFor(err)
	}
	d := &demoRun{env: env, verbose: *verbose}
	return d.run(ctx, dir, bin, int64(*blocks))
}

// demoEnclave finds the enclave program, or builds it from the source tree
// the demo runs in (go run ./cmd/tmkms-nitro-helper demo).
func demoEnclave(ctx context.Context, env *Env, path, dir string) (string, error) {
	if p, err := localmode.FindEnclave(path); err == nil || path != "" {
		return p, err
	}
	mod, err := os.ReadFile("go.mod")
	if err != nil || !bytes.Contains(mod, []byte("module github.com/tmkms-nitro/tmkms-nitro")) {
		return "", localmode.ErrNoEnclaveBinary
	}
	out := filepath.Join(dir, localmode.EnclaveBinaryName)
	fmt.Fprintln(env.Stdout, "building the enclave program ...")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/tmkms-nitro-enclave")
	cmd.Stdout, cmd.Stderr = env.Stderr, env.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building tmkms-nitro-enclave: %w", err)
	}
	return out, nil
}

type demoRun struct {
	env     *Env
	verbose bool

	mu        sync.Mutex
	latencies []time.Duration
	refusals  int
}

func (d *demoRun) run(ctx context.Context, dir, bin string, blocks int64) error {
	chainID := fmt.Sprintf("demo-%d", time.Now().Unix()%100000)
	laddr := "unix://" + filepath.Join(dir, "privval.sock")
	log := slog.New(&demoHandler{d: d})
	res, err := localmode.Init(ctx, localmode.InitOptions{Home: filepath.Join(dir, "kms"), ChainID: chainID, Enclave: bin, Address: laddr, Log: log})
	if err != nil {
		return hintFor(err)
	}
	fmt.Fprintf(d.env.Stdout, "chain %s: one validator; its key was generated in the enclave and sealed by the local KMS\n", chainID)
	fmt.Fprintf(d.env.Stdout, "consensus public key: %s\n\n", pubkey.JSON(res.PubKey))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	configured := make(chan struct{})
	var once sync.Once
	errc := make(chan error, 1)
	go func() {
		errc <- localmode.Start(ctx, localmode.StartOptions{Home: filepath.Join(dir, "kms"), Enclave: bin, Log: log,
			Configured: func(*enclaveproto.Configured) { once.Do(func() { close(configured) }) }})
	}()
	select {
	case <-configured:
	case err := <-errc:
		return err
	case <-ctx.Done():
		return nil
	}
	start := time.Now()
	node, err := localnode.Start(ctx, localnode.Config{Home: filepath.Join(dir, "node"), ChainID: chainID, PubKey: ed25519.PubKey(res.PubKey),
		Laddr: laddr, BlockInterval: 200 * time.Millisecond})
	if err != nil {
		return err
	}
	defer node.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for node.Height() < blocks {
		select {
		case <-ctx.Done():
			fmt.Fprintln(d.env.Stdout, "\ninterrupted")
			return d.summary(node.Height(), time.Since(start))
		case err := <-errc:
			return fmt.Errorf("the signer stopped: %w", err)
		case <-tick.C:
		}
	}
	return d.summary(node.Height(), time.Since(start))
}

func (d *demoRun) signed(hrs, block string, latency time.Duration) {
	h, r, step, err := metrics.ParseHRS(hrs)
	if err != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.latencies = append(d.latencies, latency)
	fmt.Fprintf(d.env.Stdout, "height %5d  round %d  %-9s  block %-12s  signed in %6.2f ms\n", h, r, step, strings.ToUpper(block), float64(latency.Microseconds())/1000)
}

func (d *demoRun) refused(msg string, attrs map[string]string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refusals++
	fmt.Fprintf(d.env.Stdout, "REFUSED %s: %s %s\n", attrs["hrs"], msg, attrs["err"])
}

func (d *demoRun) summary(height int64, took time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := bench.Summarize(d.latencies)
	fmt.Fprintf(d.env.Stdout, "\n%d blocks in %s: %d signatures, %d refused; signing latency in the enclave (guard, signature, durable state on the host) p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
		height, took.Round(time.Millisecond), l.Count, d.refusals, l.P50, l.P99, l.Max)
	if height == 0 {
		return errors.New("no block was produced")
	}
	return nil
}

// demoHandler turns the enclave's per-signature log records, relayed by
// the helper, into the demo's lines; with -v it also prints everything.
type demoHandler struct {
	d     *demoRun
	attrs []slog.Attr
}

func (h *demoHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *demoHandler) Handle(_ context.Context, r slog.Record) error {
	attrs := map[string]string{}
	for _, a := range h.attrs {
		attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
	fromEnclave := attrs["source"] == "enclave"
	switch {
	case fromEnclave && r.Message == "signed":
		lat, _ := time.ParseDuration(attrs["latency"])
		h.d.signed(attrs["hrs"], attrs["block"], lat)
	case fromEnclave && r.Level >= slog.LevelError && strings.HasPrefix(r.Message, "refused"):
		h.d.refused(r.Message, attrs)
	case h.d.verbose || r.Level >= slog.LevelError:
		fmt.Fprintf(h.d.env.Stderr, "%s %s %s %v\n", r.Time.Format("15:04:05.000"), r.Level, r.Message, attrs)
	}
	return nil
}

func (h *demoHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &demoHandler{d: h.d, attrs: append(slices.Clone(h.attrs), as...)}
}

func (h *demoHandler) WithGroup(string) slog.Handler { return h }
