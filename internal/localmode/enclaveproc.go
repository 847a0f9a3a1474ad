package localmode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclave"
	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/pcr"
	"github.com/tmkms-nitro/tmkms-nitro/internal/softnsm"
	"github.com/tmkms-nitro/tmkms-nitro/internal/transport"
)

// EnclaveBinaryName is the enclave program's file name.
const EnclaveBinaryName = "tmkms-nitro-enclave"

// ErrNoEnclaveBinary is returned when the enclave program cannot be found.
var ErrNoEnclaveBinary = errors.New("cannot find the tmkms-nitro-enclave program")

// FindEnclave returns the enclave program: path if given, else the one next
// to this executable, else the one on $PATH.
func FindEnclave(path string) (string, error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("%w: %v", ErrNoEnclaveBinary, err)
		}
		return path, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), EnclaveBinaryName)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(EnclaveBinaryName); err == nil {
		return p, nil
	}
	return "", ErrNoEnclaveBinary
}

// configAddr is where a local enclave listens for configuration.
func configAddr(home string) transport.Addr {
	return transport.Port(transport.Addr{Scheme: transport.Unix, Path: filepath.Join(home, enclave.LocalEnclaveSockets)}, enclaveproto.ConfigPort)
}

// enclaveRunning reports whether an enclave answers on home's config socket.
func enclaveRunning(ctx context.Context, home string) bool {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	c, err := transport.Dial(ctx, configAddr(home), nil)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Enclave is a local enclave process, restarted when it dies, as a Nitro
// enclave would be by its service, and the software NSM it uses.
type Enclave struct {
	bin, home string
	log       *slog.Logger
	spawned   func(pid int) // nil: no one asked
	done      chan struct{} // closed when supervision has ended
	nsmDone   chan struct{} // closed when the software NSM has stopped
}

// StartEnclave runs the enclave program for home until ctx ends, restarting
// it if it exits. If an enclave is already running for home (the helper was
// restarted, the enclave was not), it is used and not supervised, as on
// Nitro where the enclave outlives the helper. spawned, if not nil, is
// called with the pid of each process started.
func StartEnclave(ctx context.Context, bin, home string, log *slog.Logger, spawned func(pid int)) (*Enclave, error) {
	e := &Enclave{bin: bin, home: home, log: log, spawned: spawned, done: make(chan struct{}), nsmDone: make(chan struct{})}
	ctx, cancel := context.WithCancel(ctx)
	// The NSM is served for as long as the enclave is supervised, and for
	// an adopted enclave too: its next unseal needs an attestation.
	if err := e.serveNSM(ctx); err != nil {
		cancel()
		return nil, err
	}
	go func() {
		<-e.done
		cancel()
	}()
	if pid, ok := FindEnclavePID(home); ok && enclaveRunning(ctx, home) {
		log.Info("an enclave is already running for this home; using it", "home", home, "pid", pid)
		go e.adopt(ctx, pid)
		return e, nil
	}
	p, err := e.spawn()
	if err != nil {
		close(e.done)
		return nil, err
	}
	if err := e.waitReady(ctx, p); err != nil {
		p.cmd.Process.Kill()
		<-p.exited
		close(e.done)
		return nil, err
	}
	go e.supervise(ctx, p)
	return e, nil
}

// proc is a started enclave process; exited receives its Wait result.
type proc struct {
	cmd    *exec.Cmd
	exited chan error
}

func (e *Enclave) spawn() (*proc, error) {
	// The enclave's console: its records also reach the helper's log
	// through the log channel, as on Nitro, where the console is visible
	// only in debug mode.
	console, err := os.OpenFile(filepath.Join(e.home, "enclave.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer console.Close()
	cmd := exec.Command(e.bin, "--local", e.home)
	cmd.Stdout, cmd.Stderr = console, console
	// Its own process group: a Ctrl-C on the helper's terminal reaches the
	// helper, which then stops the enclave in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start the enclave: %w", err)
	}
	e.log.Info("started the local enclave", "pid", cmd.Process.Pid, "program", e.bin)
	if e.spawned != nil {
		e.spawned(cmd.Process.Pid)
	}
	p := &proc{cmd: cmd, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	return p, nil
}

func (e *Enclave) waitReady(ctx context.Context, p *proc) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if enclaveRunning(ctx, e.home) {
			return nil
		}
		select {
		case err := <-p.exited:
			p.exited <- err
			return fmt.Errorf("the enclave exited at start (%v); see %s", err, filepath.Join(e.home, "enclave.log"))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return errors.New("the enclave did not start listening within 10 s")
}

func (e *Enclave) supervise(ctx context.Context, p *proc) {
	defer close(e.done)
	for {
		select {
		case <-ctx.Done():
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(5 * time.Second):
				p.cmd.Process.Kill()
				<-p.exited
			}
			return
		case err := <-p.exited:
			e.log.Warn("the local enclave exited; restarting it", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
		var err error
		if p, err = e.spawn(); err != nil {
			e.log.Error("cannot restart the enclave", "err", err)
			return
		}
	}
}

// adopt watches an enclave a previous helper started: it is stopped with
// this helper, and replaced by a supervised one if it dies.
func (e *Enclave) adopt(ctx context.Context, pid int) {
	for {
		select {
		case <-ctx.Done():
			syscall.Kill(pid, syscall.SIGTERM)
			close(e.done)
			return
		case <-time.After(200 * time.Millisecond):
		}
		if syscall.Kill(pid, 0) != nil {
			break
		}
	}
	e.log.Warn("the local enclave exited; restarting it", "pid", pid)
	p, err := e.spawn()
	if err != nil {
		e.log.Error("cannot restart the enclave", "err", err)
		close(e.done)
		return
	}
	e.supervise(ctx, p)
}

// FindEnclavePID finds the local enclave process of home, if one runs.
func FindEnclavePID(home string) (int, bool) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	want := "\x00--local\x00" + home + "\x00"
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.HasSuffix(string(b), want) || !strings.Contains(string(b), EnclaveBinaryName) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err == nil {
			return pid, true
		}
	}
	return 0, false
}

// Wait returns when the supervised enclave and its NSM have been stopped.
func (e *Enclave) Wait() {
	<-e.done
	<-e.nsmDone
}

// serveNSM starts the software NSM on home's NSM socket until ctx ends.
func (e *Enclave) serveNSM(ctx context.Context) error {
	ca, err := softnsm.LoadCA(filepath.Join(e.home, enclave.LocalNSMDir))
	if err != nil {
		return err
	}
	path := filepath.Join(e.home, enclave.LocalNSMSocket)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	os.Remove(path) // left by a helper that stopped
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("cannot serve the software NSM: %w", err)
	}
	pcr4 := pcr.PCR4(enclave.LocalInstanceID)
	srv := &softnsm.Server{
		CA:       ca,
		ModuleID: enclave.LocalInstanceID + "-enc0000000000000001",
		PCRs:     map[int][]byte{4: pcr4[:]},
		Log:      e.log,
	}
	go func() {
		defer close(e.nsmDone)
		if err := srv.Serve(ctx, ln); err != nil {
			e.log.Error("the software NSM stopped", "err", err)
		}
	}()
	return nil
}

// DialConfig connects to the enclave's config port.
func DialConfig(ctx context.Context, home string) (net.Conn, error) {
	return transport.Dial(ctx, configAddr(home), nil)
}
