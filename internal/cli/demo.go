package cli

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/localnode"
	"github.com/tmkms-nitro/tmkms-nitro/internal/privval"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
	"github.com/tmkms-nitro/tmkms-nitro/internal/transport"
)

func runDemo(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "demo", "[--blocks N] [--home DIR]",
		"Runs a local CometBFT validator (in-process, CometBFT v1.0, kvstore app) whose only key is held by\n"+
			"this project's signer, shows a line per signature, and stops after N blocks or Ctrl-C.")
	blocks := fs.Int("blocks", 20, "stop after this many blocks")
	home := fs.String("home", "", "keep the chain's files here (default: a temporary directory, removed at exit)")
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
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return demo(ctx, env, dir, int64(*blocks))
}

// demoStats collects what the summary prints.
type demoStats struct {
	mu        sync.Mutex
	latencies []time.Duration
	refusals  int
}

func (s *demoStats) observe(env *Env) func(signer.Event) {
	return func(e signer.Event) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if e.Err != nil {
			s.refusals++
			fmt.Fprintf(env.Stdout, "height %5d  round %d  %-9s  REFUSED: %v\n", e.HRS.Height, e.HRS.Round, e.HRS.Step, e.Err)
			return
		}
		s.latencies = append(s.latencies, e.Latency)
		fmt.Fprintf(env.Stdout, "height %5d  round %d  %-9s  block %-12s  signed in %6.2f ms\n",
			e.HRS.Height, e.HRS.Round, e.HRS.Step, blockLabel(e.BlockID), float64(e.Latency.Microseconds())/1000)
	}
}

func blockLabel(id signstate.BlockID) string {
	if id.IsNil() {
		return "nil"
	}
	return fmt.Sprintf("%X", id.Hash[:6])
}

func demo(ctx context.Context, env *Env, dir string, blocks int64) error {
	key, err := signer.GenerateEd25519()
	if err != nil {
		return err
	}
	store, err := signstate.Open(filepath.Join(dir, "priv_validator_state"), signstate.Options{AllowMissing: true})
	if err != nil {
		return err
	}
	defer store.Close()
	chainID := fmt.Sprintf("demo-%d", time.Now().Unix()%100000)
	stats := &demoStats{}
	s := signer.New(key, chainID, store.State(), store, signer.Options{Observe: stats.observe(env)})
	laddr := "unix://" + filepath.Join(dir, "privval.sock")
	addr, err := transport.ParseAddr(laddr)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "chain %s: one validator, key held by the signer, state durably persisted in %s\n", chainID, dir)
	fmt.Fprintf(env.Stdout, "consensus public key: {\"type\":\"tendermint/PubKeyEd25519\",\"value\":\"%s\"}\n\n",
		base64.StdEncoding.EncodeToString(key.PubKey().Bytes()))

	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go privval.NewHandler(s, privval.Auto, nil).Run(sctx, func(ctx context.Context) (net.Conn, error) {
		return transport.Dial(ctx, addr, nil)
	}, privval.Options{})

	start := time.Now()
	node, err := localnode.Start(ctx, localnode.Config{Home: filepath.Join(dir, "node"), ChainID: chainID, PubKey: key.PubKey(), Laddr: laddr, BlockInterval: 200 * time.Millisecond})
	if err != nil {
		return err
	}
	defer node.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for node.Height() < blocks {
		select {
		case <-ctx.Done():
			fmt.Fprintln(env.Stdout, "\ninterrupted")
			return printSummary(env, stats, node.Height(), time.Since(start))
		case <-tick.C:
		}
	}
	return printSummary(env, stats, node.Height(), time.Since(start))
}

func printSummary(env *Env, s *demoStats, height int64, took time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := slices.Clone(s.latencies)
	slices.Sort(l)
	pct := func(p float64) float64 {
		if len(l) == 0 {
			return 0
		}
		return float64(l[int(p*float64(len(l)-1))].Microseconds()) / 1000
	}
	fmt.Fprintf(env.Stdout, "\n%d blocks in %s: %d signatures, %d refused; signing latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
		height, took.Round(time.Millisecond), len(l), s.refusals, pct(0.5), pct(0.99), pct(1))
	if height == 0 {
		return errors.New("no block was produced")
	}
	return nil
}
