// Package bench measures signing latency as a CometBFT node sees it, for
// several signers side by side in one run:
//
//   - (a) CometBFT's own FilePV behind its own SignerServer, the baseline;
//   - (b) this project's signer core: package signer with a signstate.File
//     (fdatasync per signature) behind the privval handler;
//   - (c) the full local stack: local init, then local start (helper,
//     enclave process, local KMS), signing through the helper's bridge with
//     the host persisting the state before the enclave releases;
//   - (d) (c) with [ha]: the helper commits each decision to a 3-member
//     etcd cluster run in the bench process;
//   - (e) (c) with an anchor: the enclave commits each decision to such a
//     cluster itself, over TLS it terminates, the helper relaying bytes.
//     Alongside it, on the same cluster, the bench times raw etcd
//     compare-and-swap transactions, the floor of what anchoring can cost.
//
// The node side is CometBFT's own privval client code (SignerListenerEndpoint
// and SignerClient) listening on a unix socket that the signer dials. Each
// height is a proposal, a prevote and a precommit carrying a vote extension
// whose signature is requested, sent one at a time as consensus does. The
// configurations take turns in short chunks of heights, in a rotating
// order, so that a change in the machine's load or the disk's behaviour
// during the run, and the journal commits that FilePV's renames leave for
// whoever syncs next, affect all of them alike. Every signature is verified
// after its chunk, outside the timed section.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// Config is one of the signers measured.
type Config int

const (
	FilePV Config = iota // (a) CometBFT FilePV + SignerServer
	Core                 // (b) our signer core
	Stack                // (c) the full local stack
	HA                   // (d) the full local stack with [ha] on a local etcd cluster
	Anchor               // (e) the full local stack with the enclave's anchor on a local etcd cluster
)

// AllConfigs returns the configurations in the order they are reported.
func AllConfigs() []Config { return []Config{FilePV, Core, Stack, HA, Anchor} }

// NeedsEnclave reports whether the configuration runs the enclave program.
func (c Config) NeedsEnclave() bool { return c == Stack || c == HA || c == Anchor }

var configInfo = [...]struct{ letter, id, name, durability string }{
	FilePV: {"a", "filepv", "CometBFT FilePV + SignerServer",
		"CometBFT's own: the JSON state written to a new O_SYNC temp file, renamed over the old one (no directory fsync), per signature"},
	Core: {"b", "core", "signer core (signer + signstate.File + privval handler)",
		"fdatasync per signature: the 1 KiB double-slot state record overwritten in place"},
	Stack: {"c", "stack", "local stack (helper + enclave process, local start)",
		"the enclave sends each state record to the helper, which writes it with fdatasync before acknowledging; the enclave releases the signature only then"},
	HA: {"d", "ha", "local stack with high availability (3-member etcd on loopback, in the bench process)",
		"as (c), after the decision is committed by a compare-and-swap to a 3-member etcd cluster (each member fsyncs its Raft log) through the helper"},
	Anchor: {"e", "anchor", "local stack with an anchor (the enclave commits to a 3-member etcd on loopback, in the bench process)",
		"as (c), after the enclave itself commits the decision by a compare-and-swap to a 3-member etcd cluster (each member fsyncs its Raft log) over TLS it terminates, as an etcd user that may only read and write under the prefix; the helper only relays the bytes"},
}

// Letter is "a", "b", "c", "d" or "e".
func (c Config) Letter() string { return configInfo[c].letter }

// ID is "filepv", "core", "stack", "ha" or "anchor".
func (c Config) ID() string { return configInfo[c].id }

// Name describes the configuration.
func (c Config) Name() string { return configInfo[c].name }

// Durability says how the configuration persists its state.
func (c Config) Durability() string { return configInfo[c].durability }

func (c Config) String() string { return "(" + c.Letter() + ") " + c.ID() }

// ParseConfigs parses a comma-separated list of configurations, each named
// by letter (a, b, c, d, e) or id (filepv, core, stack, ha, anchor).
func ParseConfigs(s string) ([]Config, error) {
	var out []Config
	seen := map[Config]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		c, ok := lookupConfig(f)
		if !ok {
			return nil, fmt.Errorf("bench: unknown configuration %q (want a|filepv, b|core, c|stack, d|ha, e|anchor)", f)
		}
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out, nil
}

func lookupConfig(f string) (Config, bool) {
	for _, c := range AllConfigs() {
		if f == c.Letter() || f == c.ID() {
			return c, true
		}
	}
	return 0, false
}

// Options configure Run.
type Options struct {
	Heights int      // measured heights per configuration (3 requests each)
	Warmup  int      // heights signed first and not measured
	Configs []Config // default AllConfigs()
	// Dir is where the run's temporary directory is made (default: the
	// system's). Its filesystem decides what a durable write costs.
	Dir  string
	Keep bool // keep the temporary directory
	// Enclave is the tmkms-nitro-enclave program; needed for Stack, HA and
	// Anchor.
	Enclave string
	// ChunkHeights is how many heights a configuration signs before the
	// next one takes its turn (default 10).
	ChunkHeights int
	// Footprint measures the enclave program's packages and binary size
	// with the go tool, in the source tree of the current directory.
	Footprint bool
	// Log receives the helper's and the enclave's logs; nil discards.
	Log *slog.Logger
	// Progress receives a line per phase; nil discards.
	Progress io.Writer
}

func (o Options) withDefaults() (Options, error) {
	if len(o.Configs) == 0 {
		o.Configs = AllConfigs()
	}
	if o.ChunkHeights <= 0 {
		o.ChunkHeights = 10
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	switch {
	case o.Heights < 1:
		return o, errors.New("bench: at least one height must be measured")
	case o.Warmup < 0:
		return o, errors.New("bench: warm-up heights cannot be negative")
	}
	return o, nil
}

// chainID is the chain every configuration signs for.
const chainID = "bench-chain"

// connectTimeout bounds waiting for a signer to dial the node.
const connectTimeout = 60 * time.Second

// subject is one configuration being measured.
type subject struct {
	cfg   Config
	node  *node
	next  int64 // the next height to sign
	lat   [RequestsPerHeight][]time.Duration
	wall  time.Duration // of the measured chunks
	stack *stackRun     // for Stack only
	// txn, for Anchor, times raw etcd transactions on its cluster, taking
	// turns with its signatures.
	txn  *etcdTxn
	stop func()
	// readState reads the state the configuration left on disk, once
	// stopped; persisted is what it found.
	readState func() (signstate.State, error)
	persisted signstate.HRS
}

// checkPersisted reads the stopped configuration's state file, which must
// record the last precommit signed.
func (s *subject) checkPersisted() error {
	st, err := s.readState()
	if err != nil {
		return fmt.Errorf("bench: %s: reading the state left on disk: %w", s.cfg, err)
	}
	s.persisted = st.HRS()
	want := signstate.HRS{Height: s.next - 1, Step: signstate.StepPrecommit}
	if s.persisted != want {
		return fmt.Errorf("bench: %s: the state on disk is %s, but %s was signed last", s.cfg, s.persisted, want)
	}
	return nil
}

// nativeState reads a native state file.
func nativeState(path string) func() (signstate.State, error) {
	return func() (signstate.State, error) { return signstate.Peek(path) }
}

// run signs heights heights; with record, their latencies count.
func (s *subject) run(ctx context.Context, heights int, record bool) error {
	batch := make([]signed, 0, heights)
	start := time.Now()
	for range heights {
		lat, sg, err := s.node.signHeight(s.next)
		if err != nil {
			return fmt.Errorf("bench: %s: %w", s.cfg, err)
		}
		s.next++
		batch = append(batch, sg)
		if record {
			for i, d := range lat {
				s.lat[i] = append(s.lat[i], d)
			}
		}
	}
	if record {
		s.wall += time.Since(start)
	}
	for _, sg := range batch {
		if err := s.node.verify(sg); err != nil {
			return fmt.Errorf("bench: %s: %w", s.cfg, err)
		}
	}
	if s.txn != nil {
		// As many transactions as the anchor committed, under the same
		// conditions, so that the two distributions compare.
		if err := s.txn.run(ctx, heights*RequestsPerHeight, record); err != nil {
			return fmt.Errorf("bench: %s: %w", s.cfg, err)
		}
	}
	return nil
}

// thenStop makes f run after the subject's stop.
func (s *subject) thenStop(f func()) {
	stop := s.stop
	s.stop = func() { stop(); f() }
}

// Run measures the configurations and returns the report.
func Run(ctx context.Context, o Options) (*Report, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(orTemp(o.Dir), 0o700); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	dir, err := os.MkdirTemp(o.Dir, "tmkms-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if o.Keep {
		fmt.Fprintf(o.Progress, "keeping the files in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	env := probeEnvironment(dir)
	var fp *Footprint
	if o.Footprint {
		// Before the signers start, so that the builds do not slow them down.
		fmt.Fprintln(o.Progress, "measuring the enclave's footprint: go list, go build")
		fp = measureFootprint(ctx, "")
	}
	subjects, err := startAll(ctx, dir, o)
	if err == nil {
		err = measure(ctx, subjects, o)
	}
	stopAll(subjects)
	if err != nil {
		return nil, err
	}
	for _, s := range subjects {
		if err := s.checkPersisted(); err != nil {
			return nil, err
		}
	}
	env.LoadAvgEnd = loadAvg()
	return newReport(env, o, subjects, fp), nil
}

func orTemp(dir string) string {
	if dir == "" {
		return os.TempDir()
	}
	return dir
}

// startAll sets up every configuration, each in its own directory with its
// own node socket.
func startAll(ctx context.Context, dir string, o Options) ([]*subject, error) {
	var subjects []*subject
	for _, c := range o.Configs {
		fmt.Fprintf(o.Progress, "setting up %s: %s\n", c, c.Name())
		d := filepath.Join(dir, c.ID())
		if err := os.Mkdir(d, 0o700); err != nil {
			return subjects, fmt.Errorf("bench: %w", err)
		}
		s, err := start(ctx, c, d, o)
		if err != nil {
			return subjects, fmt.Errorf("bench: %s: %w", c, err)
		}
		subjects = append(subjects, s)
	}
	return subjects, nil
}

func start(ctx context.Context, c Config, dir string, o Options) (*subject, error) {
	switch c {
	case FilePV:
		return startFilePV(dir)
	case Core:
		return startCore(ctx, dir, o.Log)
	case Stack:
		return startStack(ctx, dir, o, stackSetup{cfg: Stack})
	case HA:
		return startHA(ctx, dir, o)
	case Anchor:
		return startAnchor(ctx, dir, o)
	}
	return nil, fmt.Errorf("unknown configuration %d", c)
}

func stopAll(subjects []*subject) {
	for i := len(subjects) - 1; i >= 0; i-- {
		subjects[i].stop()
	}
}

// measure warms every configuration up, then lets them take turns, chunk
// by chunk and in a rotating order, until each has signed o.Heights
// measured heights.
func measure(ctx context.Context, subjects []*subject, o Options) error {
	fmt.Fprintf(o.Progress, "warming up: %d heights each\n", o.Warmup)
	for _, s := range subjects {
		if err := s.run(ctx, o.Warmup, false); err != nil {
			return err
		}
	}
	fmt.Fprintf(o.Progress, "measuring: %d heights each, %d at a time per configuration\n", o.Heights, o.ChunkHeights)
	for round, done := 0, 0; done < o.Heights; round, done = round+1, done+o.ChunkHeights {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		// The order rotates: a configuration that runs right after FilePV
		// pays for the journal commits its renames leave behind.
		for i := range subjects {
			s := subjects[(round+i)%len(subjects)]
			if err := s.run(ctx, min(o.ChunkHeights, o.Heights-done), true); err != nil {
				return err
			}
		}
	}
	for _, s := range subjects {
		if s.stack != nil {
			s.stack.sampleMemory()
		}
	}
	return nil
}
