package enclave

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/tmkms-nitro/tmkms-nitro/internal/host"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// stateHost runs a real helper state server over a unix socket.
type stateHost struct {
	sock, path string
	file       *signstate.File
	cancel     context.CancelFunc
	done       chan struct{}
}

func startStateHost(t *testing.T, dir string) *stateHost {
	t.Helper()
	h := &stateHost{sock: filepath.Join(dir, "state.sock"), path: filepath.Join(dir, "state")}
	f, err := signstate.Open(h.path, signstate.Options{AllowMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", h.sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.file, h.cancel, h.done = f, cancel, make(chan struct{})
	go func() {
		defer close(h.done)
		(&host.StateServer{File: f, Log: slog.New(slog.DiscardHandler)}).Serve(ctx, ln)
	}()
	t.Cleanup(h.stop)
	return h
}

func (h *stateHost) stop() {
	h.cancel()
	<-h.done
	h.file.Close()
}

func (h *stateHost) store() *remoteStore {
	return &remoteStore{log: slog.New(slog.DiscardHandler), dial: func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", h.sock)
	}}
}

func st(h int64, step signstate.Step) signstate.State {
	return signstate.State{Height: h, Step: step}
}

func TestRemoteStorePersistsBeforeReturning(t *testing.T) {
	h := startStateHost(t, t.TempDir())
	r := h.store()
	ctx := context.Background()
	if _, err := r.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Save(ctx, st(5, signstate.StepPrevote)); err != nil {
		t.Fatal(err)
	}
	if got := h.file.State().HRS(); got != st(5, signstate.StepPrevote).HRS() {
		t.Fatalf("host file at %v after an acknowledged save", got)
	}
	// The host refuses to go down, and the refusal reaches the signer.
	if err := r.Save(ctx, st(4, signstate.StepPrecommit)); err == nil {
		t.Fatal("a lower state was acknowledged")
	}
}

// A helper restarted from an older state file must not lower what the
// enclave knows: on reconnecting, the enclave first persists its own state,
// so a save below it is then refused by the host as well.
func TestRemoteStoreNeverLowered(t *testing.T) {
	dir := t.TempDir()
	h := startStateHost(t, dir)
	r := h.store()
	ctx := context.Background()
	r.Load(ctx)
	if err := r.Save(ctx, st(9, signstate.StepPrecommit)); err != nil {
		t.Fatal(err)
	}
	h.stop()
	// The new helper starts from a file that lost the last saves (restored
	// from a backup, say).
	os.Remove(h.path)
	os.Remove(h.sock)
	h2 := startStateHost(t, dir)
	if err := r.Save(ctx, st(5, signstate.StepPrevote)); err == nil {
		t.Fatal("a state below what the enclave knew was persisted")
	}
	if got := h2.file.State().HRS(); got != st(9, signstate.StepPrecommit).HRS() {
		t.Fatalf("host file at %v, want the enclave's 9/0/precommit", got)
	}
	if err := r.Save(ctx, st(10, signstate.StepPropose)); err != nil {
		t.Fatalf("save after the helper restarted: %v", err)
	}
}

// TestRemoteStoreOtherChain: a helper that, on a redial, offers another
// chain's state (ahead of this chain's) is refused, and that state is
// neither taken as this chain's nor written back over it.
func TestRemoteStoreOtherChain(t *testing.T) {
	dir := t.TempDir()
	h := startStateHost(t, dir)
	r := h.store()
	r.chain = "chain-aaaaa"
	ctx := context.Background()
	if _, err := r.Load(ctx); err != nil {
		t.Fatal(err)
	}
	mine := signstate.State{Height: 5, Step: signstate.StepPrevote, SignBytes: []byte("\x0a\x0bchain-aaaaa"), Signature: make([]byte, 64)}
	if err := r.Save(ctx, mine); err != nil {
		t.Fatal(err)
	}
	h.stop()
	os.Remove(h.sock)
	other := signstate.State{Height: 9, Step: signstate.StepPrecommit, SignBytes: []byte("\x0a\x0bchain-bbbbb"), Signature: make([]byte, 64)}
	f, err := signstate.Open(h.path, signstate.Options{})
	if err == nil {
		err = f.Save(ctx, other)
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	h2 := startStateHost(t, dir)
	next := mine
	next.Step = signstate.StepPrecommit
	if err := r.Save(ctx, next); !errors.Is(err, errBadConfig) {
		t.Fatalf("Save over another chain's snapshot = %v, want a refusal", err)
	}
	if got := h2.file.State().HRS(); got != other.HRS() {
		t.Fatalf("host file at %v, want chain-bbbbb's %v untouched", got, other.HRS())
	}
	if r.known.HRS() != mine.HRS() {
		t.Fatalf("the enclave's known state became %v", r.known.HRS())
	}
}
