package devcli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cometbft/cometbft/crypto/ed25519"

	"github.com/tmkms-nitro/tmkms-nitro/internal/bench"
	"github.com/tmkms-nitro/tmkms-nitro/internal/cli"
	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/ha/etcdlocal"
	"github.com/tmkms-nitro/tmkms-nitro/internal/localmode"
	"github.com/tmkms-nitro/tmkms-nitro/internal/localnode"
	"github.com/tmkms-nitro/tmkms-nitro/internal/pubkey"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

func runDemo(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "demo", "[--blocks N] [--home DIR] [--ha] [--metrics HOST:PORT]",
		"Runs the whole system on this machine: a local CometBFT validator (in-process, v1.0, kvstore app) whose\n"+
			"only key was generated inside the enclave process and sealed by the local KMS, which releases it only to\n"+
			"an enclave binary with the PCR0 its key policy pins. Shows a line per signature; stops after N blocks.\n"+
			"With --ha, three signer instances share the key through a local 3-member etcd cluster; the one signing\n"+
			"is stopped halfway and another takes over. Each signer serves Prometheus metrics (/metrics, /healthz) from\n"+
			"--metrics on, the next instances on the next ports; the demo prints the addresses.")
	blocks := fs.Int("blocks", 20, "stop after this many blocks")
	withHA := fs.Bool("ha", false, "run three signer instances with [ha] on a local etcd cluster, and stop the signing one halfway")
	home := fs.String("home", "", "keep the files here (default: a temporary directory, removed at exit)")
	enclaveBin := fs.String("enclave", "", "path of tmkms-nitro-enclave (default: next to this program, on $PATH, or built from the source tree)")
	verbose := fs.Bool("v", false, "also show the helper's and the enclave's logs")
	metricsAddr := fs.String("metrics", "127.0.0.1:26661", "serve the first signer's metrics on this address (port 0: any free port; \"\": none)")
	if err := cli.Parse(fs, args, 0); err != nil {
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
	fmt.Fprintf(env.Stderr, "%s: %s\n", prog, localmode.Notice(dir))
	bin, err := demoEnclave(ctx, env, *enclaveBin, dir)
	if err != nil {
		return hintFor(err)
	}
	d := &demoRun{env: env, verbose: *verbose, perInstance: map[string]int{}}
	if *withHA {
		d.instances = 3
	}
	if *metricsAddr != "" {
		if d.metrics, err = metricsAddresses(*metricsAddr, max(d.instances, 1)); err != nil {
			return err
		}
	}
	return d.run(ctx, dir, bin, int64(*blocks))
}

// demoEnclave finds the enclave program, or builds it from the source tree
// the demo runs in (go run ./cmd/tmkms-nitro-dev demo).
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
	env       *Env
	verbose   bool
	instances int // 0: one signer, no [ha]

	mu          sync.Mutex
	latencies   []time.Duration
	refusals    int
	lastBy      string         // the instance of the last signature
	lastAt      time.Time      // and when
	perInstance map[string]int // signatures by instance
	cluster     *etcdlocal.Cluster
	metrics     []string // each signer's metrics address; nil: none
}

// metricsAddresses returns n metrics addresses from first: its port and
// the next ones, or with port 0 free ports. Each is checked free now, so
// that a port in use fails the demo before anything starts.
func metricsAddresses(first string, n int) ([]string, error) {
	host, port, err := net.SplitHostPort(first)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p+n-1 > 65535 {
		return nil, fmt.Errorf("--metrics: bad port %q", port)
	}
	var addrs []string
	for i := range n {
		want := net.JoinHostPort(host, strconv.Itoa(p))
		if p != 0 {
			want = net.JoinHostPort(host, strconv.Itoa(p+i))
		}
		ln, err := net.Listen("tcp", want)
		if err != nil {
			return nil, fmt.Errorf("--metrics: %w (choose another address with --metrics, or --metrics '' for none)", err)
		}
		addrs = append(addrs, ln.Addr().String())
		ln.Close()
	}
	return addrs, nil
}

func (d *demoRun) run(ctx context.Context, dir, bin string, blocks int64) error {
	chainID := fmt.Sprintf("demo-%d", time.Now().Unix()%100000)
	laddr := "unix://" + filepath.Join(dir, "privval.sock")
	log := slog.New(&demoHandler{d: d})
	first := filepath.Join(dir, "kms")
	res, err := localmode.Init(ctx, localmode.InitOptions{Home: first, ChainIDs: []string{chainID}, Enclave: bin, Addresses: map[string]string{"": laddr}, Log: log})
	if err != nil {
		return hintFor(err)
	}
	fmt.Fprintf(d.env.Stdout, "chain %s: one validator; its key was generated in the enclave and sealed by the local KMS\n", chainID)
	fmt.Fprintf(d.env.Stdout, "consensus public key: %s\n", pubkey.JSON(res.Consensus.Key()))
	homes := []string{first}
	if d.instances > 0 {
		homes, err = d.setUpHA(dir, first)
		if d.cluster != nil {
			defer d.cluster.Close()
		}
		if err != nil {
			return err
		}
	}
	fmt.Fprintln(d.env.Stdout)

	// An interrupt stops the node first, the signers after it (the deferred
	// calls run in reverse): a node stopped while it waits for a signer that
	// is gone retries for minutes before it stops.
	signing, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	signers := make([]*demoSigner, len(homes))
	errc := make(chan error, len(homes))
	for i, home := range homes {
		metrics := ""
		if i < len(d.metrics) {
			metrics = d.metrics[i]
			of := ""
			if d.instances > 0 {
				of = " of " + filepath.Base(home)
			}
			fmt.Fprintf(d.env.Stdout, "metrics%s: http://%s/metrics (and /healthz)\n", of, metrics)
		}
		signers[i] = d.startSigner(signing, home, bin, metrics, log, errc)
	}
	for _, s := range signers {
		select {
		case <-s.configured:
		case err := <-errc:
			return err
		case <-ctx.Done():
			return nil
		}
	}
	start := time.Now()
	node, err := localnode.Start(ctx, localnode.Config{Home: filepath.Join(dir, "node"), ChainID: chainID, PubKey: ed25519.PubKey(res.Consensus.PubKey),
		Laddr: laddr, BlockInterval: 200 * time.Millisecond})
	if err != nil {
		return err
	}
	defer node.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	stoppedOne := false // with --ha: the signing instance was stopped
	for node.Height() < blocks {
		select {
		case <-ctx.Done():
			fmt.Fprintln(d.env.Stdout, "\ninterrupted")
			return d.summary(node.Height(), time.Since(start))
		case err := <-errc:
			if stoppedOne && err == nil {
				continue // the instance stopped on purpose
			}
			return fmt.Errorf("the signer stopped: %w", err)
		case <-tick.C:
		}
		if d.instances > 0 && !stoppedOne && node.Height() >= blocks/2 {
			stoppedOne = d.stopSigning(signers)
		}
	}
	return d.summary(node.Height(), time.Since(start))
}

// demoSigner is one signer instance (local start) of the demo.
type demoSigner struct {
	name       string
	configured chan struct{}
	stop       context.CancelFunc
}

func (d *demoRun) startSigner(ctx context.Context, home, bin, metrics string, log *slog.Logger, errc chan<- error) *demoSigner {
	s := &demoSigner{name: filepath.Base(home), configured: make(chan struct{})}
	ctx, s.stop = context.WithCancel(ctx)
	var once sync.Once
	instance := ""
	if d.instances > 0 {
		instance = s.name
		log = log.With("instance", s.name)
	}
	go func() {
		errc <- localmode.Start(ctx, localmode.StartOptions{Home: home, Enclave: bin, Log: log, MetricsAddress: metrics,
			Configured: func(string, *enclaveproto.Configured) { once.Do(func() { close(s.configured) }) },
			Events:     func(ev enclaveproto.Event) { d.event(ev, instance) }})
	}()
	return s
}

// setUpHA starts a local 3-member etcd cluster and makes the other
// instances' homes from the first, each with an [ha] table.
func (d *demoRun) setUpHA(dir, first string) ([]string, error) {
	c, err := etcdlocal.Start(filepath.Join(dir, "etcd"), 3)
	if err != nil {
		return nil, fmt.Errorf("local etcd cluster: %w", err)
	}
	d.cluster = c
	var homes []string
	for i := range d.instances {
		home := filepath.Join(dir, fmt.Sprintf("signer-%d", i))
		if err := localmode.Replicate(first, home, localmode.ReplicaOptions{}); err != nil {
			return nil, err
		}
		if err := localmode.SetHA(home, c.HA(filepath.Base(home))); err != nil {
			return nil, err
		}
		homes = append(homes, home)
	}
	fmt.Fprintf(d.env.Stdout, "high availability: %d signer instances with that sealed key, one etcd cluster of 3 members (%s)\n",
		d.instances, strings.Join(c.Endpoints, ", "))
	return homes, nil
}

// stopSigning stops the instance that signed last, as if its host died,
// and reports whether it did.
func (d *demoRun) stopSigning(signers []*demoSigner) bool {
	d.mu.Lock()
	by := d.lastBy
	d.mu.Unlock()
	for _, s := range signers {
		if s.name == by {
			fmt.Fprintf(d.env.Stdout, "--- stopping %s, the instance signing: another must take over ---\n", by)
			s.stop()
			return true
		}
	}
	return false
}

// event prints a line for each signature and refusal of an instance
// ("" without --ha).
func (d *demoRun) event(ev enclaveproto.Event, instance string) {
	switch ev := ev.(type) {
	case *enclaveproto.Signed:
		d.signed(ev, instance)
	case *enclaveproto.Refused:
		d.refused(ev)
	}
}

func (d *demoRun) signed(ev *enclaveproto.Signed, instance string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.latencies = append(d.latencies, ev.Latency)
	by := ""
	if instance != "" {
		if d.lastBy != "" && instance != d.lastBy {
			fmt.Fprintf(d.env.Stdout, "--- %s took over %s after %s's last signature ---\n", instance, time.Since(d.lastAt).Round(time.Millisecond), d.lastBy)
		}
		d.lastBy, d.lastAt = instance, time.Now()
		d.perInstance[instance]++
		by = "  by " + instance
	}
	block := "NIL"
	if len(ev.BlockHash) > 0 {
		block = fmt.Sprintf("%X", ev.BlockHash[:min(len(ev.BlockHash), 6)])
	}
	fmt.Fprintf(d.env.Stdout, "height %5d  round %d  %-9s  block %-12s  signed in %6.2f ms%s\n",
		ev.Height, ev.Round, signstate.Step(ev.Step), block, float64(ev.Latency.Microseconds())/1000, by)
}

func (d *demoRun) refused(ev *enclaveproto.Refused) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refusals++
	fmt.Fprintf(d.env.Stdout, "REFUSED %d/%d/%s (%s): %s\n", ev.Height, ev.Round, signstate.Step(ev.Step), ev.Reason, ev.Message)
}

func (d *demoRun) summary(height int64, took time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := bench.Summarize(d.latencies)
	fmt.Fprintf(d.env.Stdout, "\n%d blocks in %s: %d signatures, %d refused; signing latency in the enclave (guard, signature, durable state on the host) p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
		height, took.Round(time.Millisecond), l.Count, d.refusals, l.P50, l.P99, l.Max)
	if d.instances > 0 {
		var by []string
		for _, name := range slices.Sorted(maps.Keys(d.perInstance)) {
			by = append(by, fmt.Sprintf("%s %d", name, d.perInstance[name]))
		}
		fmt.Fprintf(d.env.Stdout, "signatures by instance: %s; each decision was committed to etcd before it was signed\n", strings.Join(by, ", "))
	}
	if height == 0 {
		return errors.New("no block was produced")
	}
	return nil
}

// demoHandler prints the helper's and the enclave's errors to stderr, and
// with -v every record; the lines on stdout come from the enclave's events.
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
	if h.d.verbose || r.Level >= slog.LevelError {
		fmt.Fprintf(h.d.env.Stderr, "%s %s %s %v\n", r.Time.Format("15:04:05.000"), r.Level, r.Message, attrs)
	}
	return nil
}

func (h *demoHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &demoHandler{d: h.d, attrs: append(slices.Clone(h.attrs), as...)}
}

func (h *demoHandler) WithGroup(string) slog.Handler { return h }
