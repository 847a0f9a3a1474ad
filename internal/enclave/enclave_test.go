package enclave

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/testlog"
)

// countPrefixed returns how many of msgs begin with prefix.
func countPrefixed(msgs []string, prefix string) int {
	n := 0
	for _, m := range msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

const refusedPrefix = "refused config connections"

// startRun runs the real Run on ln with no host to ship logs to. The
// returned stop cancels Run and fails the test unless Run returns nil.
func startRun(t *testing.T, ctx context.Context, ln net.Listener) (log *testlog.Recorder, stop func()) {
	log = &testlog.Recorder{}
	p := Platform{
		Listen: ln,
		DialHost: func(context.Context, uint32) (net.Conn, error) {
			return nil, errors.New("this test has no host")
		},
		Log: slog.New(log),
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, p) }()
	return log, func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v, want nil once its context ends", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return within 5 s of its context ending")
		}
	}
}

// stallingHeader declares the largest config frame; its sender then sends
// nothing more, so a reader that allocated the declared length up front
// would hold a megabyte per connection.
func stallingHeader() []byte {
	h := make([]byte, enclaveproto.HeaderSize)
	h[0], h[1], h[2] = enclaveproto.Magic, enclaveproto.Version, byte(enclaveproto.TypeConfigure)
	binary.BigEndian.PutUint32(h[12:], enclaveproto.MaxConfigPayload)
	return h
}

// ping sends the enclave, on a new connection, a message that is no
// configuration request; nil means it answered that it is not.
func ping(ctx context.Context, dial func() (net.Conn, error)) error {
	nc, err := dial()
	if err != nil {
		return err
	}
	c := enclaveproto.NewConn(nc, enclaveproto.MaxPayload(enclaveproto.TypeError))
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = c.Call(ctx, &enclaveproto.Ack{})
	if perr := (*enclaveproto.Error)(nil); errors.As(err, &perr) && perr.Code == enclaveproto.CodeBadRequest {
		return nil
	}
	return fmt.Errorf("answer to a non-request: %v, want a %s error", err, enclaveproto.CodeBadRequest)
}

// eventually polls cond until it holds or timeout passes, and returns its
// last error.
func eventually(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRunBoundsConfigConnections floods a real Run on a unix socket with
// connections that each declare a 1 MiB frame and stall. The enclave must
// serve at most maxConfigConns of them, refuse the rest at once with one
// log record, answer a fresh connection once the flood ends, and leave no
// goroutine behind when its context ends.
func TestRunBoundsConfigConnections(t *testing.T) {
	const flood = 500
	path := filepath.Join(t.TempDir(), "config.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	dial := func() (net.Conn, error) { return net.Dial("unix", path) }
	base := runtime.NumGoroutine()
	log, stop := startRun(t, t.Context(), ln)

	conns := make([]net.Conn, 0, flood)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range flood {
		c, err := dial()
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		conns = append(conns, c)
		c.Write(stallingHeader()) // a refused connection may already be closed
	}

	// Accept takes connections in order, so once the last is refused every
	// other has been accepted or refused. It must be refused well within
	// FrameTimeout, after which even a served stalled connection is dropped.
	last := conns[flood-1]
	last.SetReadDeadline(time.Now().Add(enclaveproto.FrameTimeout / 2))
	if _, err := last.Read(make([]byte, 1)); !isClosed(err) {
		t.Fatalf("connection %d of %d was not refused (read: %v); the enclave serves without a limit", flood, flood, err)
	}
	if n := runtime.NumGoroutine() - base; n > maxConfigConns+8 {
		t.Errorf("%d goroutines more than before Run while %d connections stall, want at most %d", n, flood, maxConfigConns+8)
	}
	// A refused connection reads its close at once; a held one times out.
	// (One shared deadline would not do: once it passes, reads fail
	// without looking at the socket.)
	held := 0
	for _, c := range conns[:flood-1] {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !isClosed(err) {
			if held++; held > maxConfigConns {
				break
			}
		}
	}
	if held > maxConfigConns {
		t.Errorf("the enclave holds %d stalled connections, want at most %d", held, maxConfigConns)
	}
	if n := countPrefixed(log.Messages(), refusedPrefix); n != 1 {
		t.Errorf("%d log records about refused connections for a flood of %d, want 1", n, flood)
	}

	for _, c := range conns {
		c.Close()
	}
	if err := eventually(10*time.Second, func() error { return ping(t.Context(), dial) }); err != nil {
		t.Errorf("after the flood ended, a fresh connection: %v", err)
	}

	stop()
	if err := eventually(5*time.Second, func() error {
		if n := runtime.NumGoroutine(); n > base {
			return errors.New("goroutines left behind")
		}
		return nil
	}); err != nil {
		t.Errorf("%d goroutines after Run returned, %d before it started", runtime.NumGoroutine(), base)
	}
}

// isClosed reports whether a read error means the peer closed the
// connection (rather than a timeout).
func isClosed(err error) bool {
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// pipeListener is a net.Listener over net.Pipe. Inside a synctest bubble
// its blocking is durable, so the fake clock can run through FrameTimeout
// and configIdle at once.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial() (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// TestRunDropsStalledConfigConnections fills every slot with connections
// that stall in different ways and checks that they are dropped in time
// for a fresh connection to be answered, and not before: while they hold
// the slots, a fresh connection is refused.
func TestRunDropsStalledConfigConnections(t *testing.T) {
	header := stallingHeader()
	cases := []struct {
		name  string
		sends []byte        // then nothing more
		held  time.Duration // how long the enclave may keep such a connection
	}{
		{"nothing", nil, configIdle},
		{"half a header", header[:8], enclaveproto.FrameTimeout},
		{"a header declaring 1 MiB", header, enclaveproto.FrameTimeout},
		{"a header and a partial payload", append(append([]byte(nil), header...), make([]byte, 4096)...), enclaveproto.FrameTimeout},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ln := newPipeListener()
				_, stop := startRun(t, t.Context(), ln)
				for i := range maxConfigConns {
					nc, err := ln.dial()
					if err != nil {
						t.Fatal(err)
					}
					defer nc.Close()
					if _, err := nc.Write(c.sends); err != nil {
						t.Fatalf("stalled connection %d: %v", i, err)
					}
				}
				synctest.Wait()
				if err := ping(t.Context(), ln.dial); err == nil {
					t.Errorf("a connection beyond %d stalled ones was served", maxConfigConns)
				}
				time.Sleep(c.held + time.Second)
				synctest.Wait()
				if err := ping(t.Context(), ln.dial); err != nil {
					t.Errorf("%s after the stalled connections should have been dropped: %v", c.held+time.Second, err)
				}
				stop()
			})
		})
	}
}

// TestRefusalsReported checks the log of refused connections: the first
// at once, then one record per interval counting all refused since.
func TestRefusalsReported(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		at   time.Duration
		want int
	}{
		{0, 1},
		{time.Millisecond, 0},
		{refusalLogInterval / 2, 0},
		{refusalLogInterval, 3},
		{refusalLogInterval + time.Second, 0},
		{5 * refusalLogInterval, 2},
	}
	var r refusals
	for _, s := range steps {
		if got := r.note(t0.Add(s.at)); got != s.want {
			t.Errorf("refusal at +%s: report %d, want %d", s.at, got, s.want)
		}
	}
}
