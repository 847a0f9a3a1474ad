package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/config"
	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/ha/etcdlocal"
	"github.com/tmkms-nitro/tmkms-nitro/internal/host"
	"github.com/tmkms-nitro/tmkms-nitro/internal/localmode"
)

// stackRun is what configuration (c) measures besides latency.
type stackRun struct {
	home, bin string
	pid       atomic.Int64 // the enclave process the helper started last

	// Offsets from the start of local start; the first two are set by the
	// helper's goroutines.
	enclaveStarted atomic.Int64 // time.Duration
	configured     atomic.Int64 // time.Duration
	connected      time.Duration
	firstSignature time.Duration

	peakRSS, rss int64 // bytes, VmHWM and VmRSS of the enclave process
	memErr       error
}

// stackSetup is what sets (c), (d) and (e) apart: the configuration and
// what its tmkms.toml commits to.
type stackSetup struct {
	cfg Config
	// ha, for (d), is the [ha] table written after init: the helper
	// commits to etcd.
	ha *config.HA
	// anchor, for (e), is sealed in the enclave by init, which binds the
	// key to it and writes the [ha] table: the enclave commits to etcd.
	anchor *host.AnchorFiles
}

// haInstance is the signer's name in the etcd records of (d) and (e).
const haInstance = "bench"

// startStack runs configuration (c): `local init` then `local start`
// (localmode.Init and Start, in process as `demo` runs them), with the
// node side listening where tmkms.toml's address points. The first
// signature, a proposal at height 1, is timed from the start of Start.
// The setup's [ha] table or anchor make it (d) or (e).
func startStack(ctx context.Context, dir string, o Options, setup stackSetup) (*subject, error) {
	if o.Enclave == "" {
		return nil, localmode.ErrNoEnclaveBinary
	}
	home := filepath.Join(dir, "home")
	sock := filepath.Join(dir, "node.sock")
	addr := "unix://" + sock
	statePath, err := initStack(ctx, home, addr, o, setup.anchor)
	if err != nil {
		return nil, err
	}
	if setup.ha != nil {
		if err := localmode.SetHA(home, setup.ha); err != nil {
			return nil, err
		}
	}
	n, err := listenNode(sock, chainID)
	if err != nil {
		return nil, err
	}
	st := &stackRun{home: home, bin: o.Enclave}
	ctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	t0 := time.Now()
	fmt.Fprintf(o.Progress, "  local start\n")
	go func() { errc <- localmode.Start(ctx, st.startOptions(addr, t0, o)) }()
	stop := func() {
		cancel()
		select {
		case <-errc:
		case <-time.After(15 * time.Second):
		}
		n.close()
	}
	if err := st.firstSign(n, t0, errc); err != nil {
		stop()
		return nil, err
	}
	return &subject{cfg: setup.cfg, node: n, next: 2, stack: st, stop: stop, readState: nativeState(statePath)}, nil
}

// startHA runs configuration (d): a 3-member etcd cluster on loopback and
// the local stack's helper committing to it.
func startHA(ctx context.Context, dir string, o Options) (*subject, error) {
	return onCluster(dir, o, func(c *etcdlocal.Cluster) (*subject, error) {
		return startStack(ctx, dir, o, stackSetup{cfg: HA, ha: c.HA(haInstance)})
	})
}

// onCluster starts a 3-member etcd cluster on loopback, in dir/etcd, for
// start's subject, and stops it after the subject.
func onCluster(dir string, o Options, start func(*etcdlocal.Cluster) (*subject, error)) (*subject, error) {
	fmt.Fprintf(o.Progress, "  etcd: 3 members on loopback, client TLS\n")
	c, err := etcdlocal.Start(filepath.Join(dir, "etcd"), 3)
	if err != nil {
		return nil, fmt.Errorf("starting etcd: %w", err)
	}
	s, err := start(c)
	if err != nil {
		c.Close()
		return nil, err
	}
	s.thenStop(c.Close)
	return s, nil
}

// initStack is `local init`, with anchor sealed first when set; it
// returns the state file's path.
func initStack(ctx context.Context, home, addr string, o Options, anchor *host.AnchorFiles) (string, error) {
	what := "keys generated in the enclave, sealed by the local KMS"
	if anchor != nil {
		what = "the anchor sealed in the enclave, " + what + " and bound to the anchor"
	}
	fmt.Fprintf(o.Progress, "  local init (%s)\n", what)
	res, err := localmode.Init(ctx, localmode.InitOptions{Home: home, ChainIDs: []string{chainID}, Enclave: o.Enclave, Addresses: map[string]string{"": addr},
		Anchor: anchor, Instance: haInstance, Log: o.Log})
	if err != nil {
		return "", fmt.Errorf("local init: %w", err)
	}
	cfg, err := config.Load(res.ConfigPath)
	if err != nil {
		return "", err
	}
	return cfg.StateFilePath, nil
}

// startOptions are `local start`'s, with hooks that record when the
// enclave process started and when it was first configured.
func (st *stackRun) startOptions(addr string, t0 time.Time, o Options) localmode.StartOptions {
	var once sync.Once
	return localmode.StartOptions{
		Home: st.home, Enclave: st.bin, Addresses: map[string]string{"": addr}, Log: o.Log,
		Spawned: func(pid int) {
			if st.pid.Swap(int64(pid)) == 0 {
				st.enclaveStarted.Store(int64(time.Since(t0)))
			}
		},
		Configured: func(string, *enclaveproto.Configured) {
			once.Do(func() { st.configured.Store(int64(time.Since(t0))) })
		},
	}
}

// firstSign waits for the enclave to dial in through the helper, then
// signs height 1, recording when each happened.
func (st *stackRun) firstSign(n *node, t0 time.Time, errc chan error) error {
	connected := make(chan error, 1)
	go func() { connected <- n.connect(connectTimeout) }()
	select {
	case err := <-connected:
		if err != nil {
			return err
		}
	case err := <-errc:
		errc <- err
		return fmt.Errorf("local start stopped before the enclave connected: %w", err)
	}
	st.connected = time.Since(t0)
	start := time.Now()
	lat, sg, err := n.signHeight(1)
	if err != nil {
		return err
	}
	st.firstSignature = start.Sub(t0) + lat[0]
	return n.verify(sg)
}

// sampleMemory reads the enclave process's peak and current resident set
// size.
func (st *stackRun) sampleMemory() {
	pid := int(st.pid.Load())
	if pid == 0 {
		pid, _ = localmode.FindEnclavePID(st.home)
	}
	if pid == 0 {
		st.memErr = errors.New("the enclave process was not found")
		return
	}
	st.peakRSS, st.rss, st.memErr = procMemory(pid)
}

// procMemory returns VmHWM and VmRSS of a process, in bytes.
func procMemory(pid int) (hwm, rss int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch k {
		case "VmHWM":
			hwm = kB(v)
		case "VmRSS":
			rss = kB(v)
		}
	}
	if hwm == 0 {
		return 0, 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
	}
	return hwm, rss, nil
}

// kB parses "   1234 kB" to bytes.
func kB(v string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
	return n << 10
}
