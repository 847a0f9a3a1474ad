package host

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"go.uber.org/goleak"

	"github.com/tmkms-nitro/tmkms-nitro/internal/config"
	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
	"github.com/tmkms-nitro/tmkms-nitro/internal/testlog"
	"github.com/tmkms-nitro/tmkms-nitro/internal/transport"
)

// localRun is Run's setting in local mode under one directory: the
// enclave's config port and the validator's socket are the test's.
type localRun struct {
	opts Options
	log  *testlog.Recorder
	// logRelease lets go a goroutine that log's After holds
	logRelease chan struct{}
	config     net.Listener  // the enclave's config port
	node       net.Listener  // the validator's priv_validator_laddr
	done       chan struct{} // closed when Run has returned
}

func newLocalRun(t *testing.T) *localRun {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"e", "h"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cfg := config.Default("eu-west-1")
	cfg.ChainID = "test-chain"
	cfg.Addresses = []string{"unix://" + filepath.Join(dir, "node.sock")}
	cfg.SealedConsensusKeyPath = filepath.Join(dir, "consensus.sealed")
	cfg.StateFilePath = filepath.Join(dir, "state")
	cfg.AllowMissingState = true
	if err := os.WriteFile(cfg.SealedConsensusKeyPath, []byte("sealed"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &localRun{log: &testlog.Recorder{}, logRelease: make(chan struct{})}
	r.opts = Options{
		Config:  cfg,
		Enclave: transport.Addr{Scheme: "unix", Path: filepath.Join(dir, "e")},
		Host:    transport.Addr{Scheme: "unix", Path: filepath.Join(dir, "h")},
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{}, nil // local mode: none
		}),
		Log:            slog.New(r.log),
		EnclaveTimeout: 10 * time.Second,
	}
	var err error
	if r.config, err = transport.Listen(transport.Port(r.opts.Enclave, cfg.EnclaveConfigPort)); err != nil {
		t.Fatal(err)
	}
	if r.node, err = net.Listen("unix", filepath.Join(dir, "node.sock")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.config.Close(); r.node.Close() })
	return r
}

// start runs Run; wait returns its error, failing the test if it does not
// return within 5 s.
func (r *localRun) start(t *testing.T, ctx context.Context) (wait func() error) {
	done := make(chan error, 1)
	r.done = make(chan struct{})
	go func() { done <- Run(ctx, r.opts); close(r.done) }()
	return func() error {
		t.Helper()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return within 5 s")
			return nil
		}
	}
}

// dialHost connects to one of the host's ports, as the enclave does.
func (r *localRun) dialHost(t *testing.T, port uint32, limit enclaveproto.Type) *enclaveproto.Conn {
	t.Helper()
	nc, err := transport.Dial(context.Background(), transport.Port(r.opts.Host, port), nil)
	if err != nil {
		t.Fatal(err)
	}
	return enclaveproto.NewConn(nc, enclaveproto.MaxPayload(limit))
}

// acceptConfigure plays the enclave's config port: it receives the
// helper's first Configure and answers it with resp.
func (r *localRun) acceptConfigure(t *testing.T, ctx context.Context, resp enclaveproto.Message) (*enclaveproto.Conn, *enclaveproto.Configure) {
	t.Helper()
	// A helper that never configures fails the test instead of hanging it.
	r.config.(*net.UnixListener).SetDeadline(time.Now().Add(10 * time.Second))
	nc, err := r.config.Accept()
	if err != nil {
		t.Fatalf("no Configure from the helper: %v", err)
	}
	c := enclaveproto.NewConn(nc, enclaveproto.MaxPayload(enclaveproto.TypeConfigure))
	m, id, err := c.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg, ok := m.(*enclaveproto.Configure)
	if !ok {
		t.Fatalf("%s on the config port, want Configure", m.Type())
	}
	if err := c.Send(ctx, resp, id); err != nil {
		t.Fatal(err)
	}
	return c, cfg
}

// TestRunServesTheEnclave plays the enclave against a real Run in local
// mode: configuration, a persisted state, a log record and the bridge to
// the validator. Once its context ends, Run must return only after every
// goroutine it started has stopped (two are held busy to show it), every
// connection it served is closed and the state file is released.
func TestRunServesTheEnclave(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := newLocalRun(t)
	r.log.After = func(msg string) { // holds the log channel's goroutine
		if msg == "hello from the enclave" {
			<-r.logRelease
		}
	}
	configuredc, releaseConf := make(chan *enclaveproto.Configured, 1), make(chan struct{})
	r.opts.Configured = func(_ string, c *enclaveproto.Configured) { // holds the configurator's
		configuredc <- c
		<-releaseConf
	}
	runCtx, stop := context.WithCancel(ctx)
	wait := r.start(t, runCtx)

	cc, req := r.acceptConfigure(t, ctx, &enclaveproto.Configured{ConsensusPubKey: make([]byte, 32)})
	defer cc.Close()
	if req.ChainID != "test-chain" || string(req.SealedConsensusKey) != "sealed" || !slices.Equal(req.Addresses, r.opts.Config.Addresses) {
		t.Fatalf("Configure = %+v", req)
	}
	select {
	case <-configuredc:
	case <-ctx.Done():
		t.Fatal("Configured was not called")
	}

	cfg := r.opts.Config
	state := r.dialHost(t, cfg.EnclaveStatePort, enclaveproto.TypeStateSnapshot)
	defer state.Close()
	if _, _, err := state.Receive(ctx); err != nil {
		t.Fatalf("no state snapshot: %v", err)
	}
	st := signstate.State{Height: 5, Step: signstate.StepPrevote, SignBytes: []byte{1}, Signature: make([]byte, 64)}
	rec, err := signstate.MarshalState(st)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := state.Call(ctx, &enclaveproto.PersistState{Record: rec, Height: 5, Step: int8(st.Step)})
	if _, err = enclaveproto.Expect[*enclaveproto.StateAck](ack); err != nil {
		t.Fatalf("PersistState: %v", err)
	}

	logs := r.dialHost(t, cfg.EnclaveLogPort, enclaveproto.TypeLogRecord)
	defer logs.Close()
	if err := logs.Send(ctx, &enclaveproto.LogRecord{Time: time.Now(), Message: "hello from the enclave"}, 0); err != nil {
		t.Fatal(err)
	}

	validator, err := transport.Dial(ctx, transport.Port(r.opts.Host, cfg.EnclaveTendermintConn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer validator.Close()
	node, err := r.node.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	exchange(t, validator, node)
	for !slices.Contains(r.log.Messages(), "hello from the enclave") {
		if ctx.Err() != nil {
			t.Fatal("the enclave's log record was not logged")
		}
		time.Sleep(10 * time.Millisecond)
	}

	stop()
	for _, release := range []chan struct{}{releaseConf, r.logRelease} {
		select {
		case <-r.done:
			t.Fatal("Run returned while its goroutines were still busy")
		case <-time.After(200 * time.Millisecond):
		}
		close(release)
	}
	if err := wait(); err != nil {
		t.Fatalf("Run = %v, want nil once its context ends", err)
	}
	// Run closed its side of every connection before returning.
	for name, c := range map[string]interface{ Read([]byte) (int, error) }{"validator bridge": validator, "node": node} {
		c.(net.Conn).SetReadDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("%s after Run returned: read %v, want EOF", name, err)
		}
	}
	if _, _, err := state.Receive(ctx); !errors.Is(err, io.EOF) {
		t.Errorf("state channel after Run returned: %v, want EOF", err)
	}
	f, err := signstate.Open(cfg.StateFilePath, signstate.Options{})
	if err != nil {
		t.Fatalf("the state file after Run returned: %v", err)
	}
	defer f.Close()
	if got := f.State().Height; got != 5 {
		t.Fatalf("persisted height %d, want 5", got)
	}
}

// TestRunEnds checks that Run ends on its own with the reason, and with
// nothing of it left running.
func TestRunEnds(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(r *localRun)
		enclave enclaveproto.Message // the answer to Configure; nil: no enclave is asked
		want    error
		wantMsg string
	}{
		{name: "the enclave refuses its configuration",
			enclave: &enclaveproto.Error{Code: enclaveproto.CodeBadConfig, Message: "other settings"},
			want:    ErrEnclaveRefused},
		{name: "a channel cannot be listened on",
			prepare: func(r *localRun) {
				r.opts.Config.MetricsAddress = "127.0.0.1:0"
				r.opts.Host.Path = filepath.Join(r.opts.Host.Path, "missing")
			},
			wantMsg: "failed to listen for the enclave's log channel"},
		{name: "a state file for another chain",
			prepare: func(r *localRun) {
				f, err := signstate.Open(r.opts.Config.StateFilePath, signstate.Options{AllowMissing: true})
				if err == nil {
					err = f.Save(context.Background(), signstate.State{Height: 1, Step: signstate.StepPrevote,
						SignBytes: []byte("\x0a\x0bother-chain"), Signature: make([]byte, 64)})
					f.Close()
				}
				if err != nil {
					panic(err)
				}
			},
			wantMsg: "is for chain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r := newLocalRun(t)
			if tt.prepare != nil {
				tt.prepare(r)
			}
			wait := r.start(t, ctx)
			if tt.enclave != nil {
				c, _ := r.acceptConfigure(t, ctx, tt.enclave)
				defer c.Close()
			}
			err := wait()
			if tt.want != nil && !errors.Is(err, tt.want) || err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Run = %v, want %v %q", err, tt.want, tt.wantMsg)
			}
		})
	}
}

// twoChains turns r's configuration into one serving r's chain and
// "other-chain", whose state file is corrupt.
func twoChains(t *testing.T, r *localRun) {
	t.Helper()
	c := r.opts.Config
	dir := filepath.Dir(c.StateFilePath)
	other := filepath.Join(dir, "other.state")
	if err := os.WriteFile(other, []byte("{corrupt"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.opts.Config = config.ForChains(c, []config.Chain{
		{ID: "other-chain", Addresses: []string{"unix://" + filepath.Join(dir, "other.sock")}},
		{ID: c.ChainID, Addresses: c.Addresses},
	})
	r.opts.Config.Validators[0].StateFilePath = other
	r.opts.Config.Validators[1].StateFilePath = c.StateFilePath
	if err := r.opts.Config.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestRunChainFailsAlone: of two chains, the one whose state file is
// corrupt stops with the reason in the log, and the other is configured
// and served; Run goes on until its context ends.
func TestRunChainFailsAlone(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := newLocalRun(t)
	twoChains(t, r)
	runCtx, stop := context.WithCancel(ctx)
	wait := r.start(t, runCtx)
	cc, req := r.acceptConfigure(t, ctx, &enclaveproto.Configured{ConsensusPubKey: make([]byte, 32)})
	defer cc.Close()
	if req.ChainID != "test-chain" || req.StatePort != config.DefaultStatePort(1) || req.ValidatorPort != config.DefaultValidatorPort(1) {
		t.Fatalf("Configure for %q on ports %d, %d; want test-chain on the second table's", req.ChainID, req.StatePort, req.ValidatorPort)
	}
	state := r.dialHost(t, req.StatePort, enclaveproto.TypeStateSnapshot)
	defer state.Close()
	if _, _, err := state.Receive(ctx); err != nil {
		t.Fatalf("no state snapshot for the healthy chain: %v", err)
	}
	for !slices.Contains(r.log.Messages(), "stopped serving this chain; the other chains go on") {
		if ctx.Err() != nil {
			t.Fatalf("the corrupt chain's failure was not logged: %q", r.log.Messages())
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-r.done:
		t.Fatal("Run returned while a chain was still served")
	case <-time.After(200 * time.Millisecond):
	}
	stop()
	if err := wait(); err != nil {
		t.Fatalf("Run = %v, want nil once its context ends", err)
	}
}

// TestRunAllChainsFail: when every chain has failed, Run returns
// ErrAllChainsFailed with each chain's reason.
func TestRunAllChainsFail(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := newLocalRun(t)
	twoChains(t, r)
	if err := os.WriteFile(r.opts.Config.Validators[1].StateFilePath, []byte("{corrupt too"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := r.start(t, ctx)()
	if !errors.Is(err, ErrAllChainsFailed) || !strings.Contains(err.Error(), "chain other-chain") || !strings.Contains(err.Error(), "chain test-chain") {
		t.Fatalf("Run = %v, want ErrAllChainsFailed naming both chains", err)
	}
}
