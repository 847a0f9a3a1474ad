package signstate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/tmkms-nitro/tmkms-nitro/internal/atomicfile"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signbytes"
)

// ErrNoStateFile is returned by Open when the state file does not exist and
// the caller did not allow starting from height 0.
var ErrNoStateFile = errors.New("state file does not exist")

// ErrLocked is returned by Open when another process holds the state file.
var ErrLocked = errors.New("state file is in use by another process")

// Options tune Open. The zero value is the safe default.
type Options struct {
	// AllowMissing creates a fresh state at height 0 when the file does not
	// exist. Without it a missing file is an error: a signer that silently
	// starts from zero has forgotten what it signed.
	AllowMissing bool
	// Logger receives migration and recovery notices; nil discards them.
	Logger *slog.Logger
}

// File is a durable state store in the native double-slot format. It also
// reads CometBFT FilePV and tmkms-light JSON state files, which it migrates
// to the native format on open, keeping a copy of the original.
//
// A File holds an exclusive lock (path + ".lock") while open, so two
// signers can never share one state file.
type File struct {
	path string
	log  *slog.Logger
	lock *os.File

	mu    sync.Mutex
	f     *os.File
	seq   uint64
	state State
	buf   [slotSize]byte
}

// Open opens, and if needed migrates or creates, the state file at path.
func Open(path string, opts Options) (_ *File, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("signstate: the directory of state file %s does not exist", path)
	}
	lock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lock.Close()
		}
	}()
	if err := prepare(path, opts, log); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("signstate: failed to open state file: %w", err)
	}
	// The lock file guards the name; this guards the file, whatever name
	// (a symlink, a bind mount) another signer reaches it by.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("signstate: %w (%s): %v", ErrLocked, path, err)
	}
	s := &File{path: path, log: log, lock: lock, f: f}
	if err := s.load(); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("signstate: failed to open lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("signstate: %w (%s): %v", ErrLocked, path, err)
	}
	return f, nil
}

// prepare makes sure a native state file exists at path: it creates a fresh
// one if allowed, or migrates a JSON file.
func prepare(path string, opts Options, log *slog.Logger) error {
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if !opts.AllowMissing {
			return fmt.Errorf("signstate: %w: %s (start from height 0 only for a new validator key)", ErrNoStateFile, path)
		}
		log.Warn("creating a new state file at height 0", "path", path)
		return writeNative(path, State{})
	case err != nil:
		return fmt.Errorf("signstate: failed to read state file: %w", err)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil
	}
	st, format, err := ParseJSON(data)
	if err != nil {
		return fmt.Errorf("signstate: %s: %w", path, err)
	}
	backup := path + ".pre-migration-" + format
	if err := atomicfile.WriteFile(backup, data, 0o600); err != nil {
		return err
	}
	log.Info("migrating state file to the native format", "path", path, "from", format, "backup", backup, "hrs", st.HRS())
	return writeNative(path, st)
}

func writeNative(path string, s State) error {
	buf := make([]byte, fileSize)
	// Slot i holds the sequence numbers congruent to i mod 2.
	if err := encodeSlot(buf[:slotSize], 2, s); err != nil {
		return err
	}
	if err := encodeSlot(buf[slotSize:], 1, s); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, buf, 0o600)
}

func (s *File) load() error {
	buf := make([]byte, fileSize+1)
	n, _ := s.f.ReadAt(buf, 0)
	if n != fileSize {
		return fmt.Errorf("signstate: %w: %s is %d bytes, want %d (not a state file?)", ErrCorrupt, s.path, n, fileSize)
	}
	var errs [2]error
	found := false
	for i := range 2 {
		seq, st, err := decodeSlot(buf[i*slotSize : (i+1)*slotSize])
		if err == nil && seq%2 != uint64(i) {
			err = fmt.Errorf("sequence number %d does not belong in slot %d", seq, i)
		}
		if err != nil {
			errs[i] = err
			continue
		}
		if !found || seq > s.seq {
			s.seq, s.state, found = seq, st, true
		}
	}
	if !found {
		return fmt.Errorf("signstate: %w: %s: slot 0: %v; slot 1: %v", ErrCorrupt, s.path, errs[0], errs[1])
	}
	for i, err := range errs {
		if err != nil {
			s.log.Warn("state file slot damaged, using the other one", "path", s.path, "slot", i, "err", err)
		}
	}
	return nil
}

// State returns the last persisted state.
func (s *File) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// Save durably persists st. It refuses a state below the one already held.
// When Save returns an error the previous state is still the one on disk.
// A local fsync cannot be interrupted, so ctx is not consulted.
func (s *File) Save(_ context.Context, st State) error {
	if err := validate(st); err != nil {
		return fmt.Errorf("signstate: refusing to persist an invalid state: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The file applies the guard too: a state it holds is never replaced by
	// a lower one, nor by another payload at the same position (a late save
	// from a superseded connection, say). Saving the same state again, or
	// the same payload with another timestamp, is allowed.
	if _, err := Check(s.state, Request{HRS: st.HRS(), BlockID: st.BlockID, SignBytes: st.SignBytes}); err != nil {
		return fmt.Errorf("signstate: refusing to persist: %w", err)
	}
	seq := s.seq + 1
	if err := encodeSlot(s.buf[:], seq, st); err != nil {
		return err
	}
	if _, err := s.f.WriteAt(s.buf[:], int64(seq%2)*slotSize); err != nil {
		return fmt.Errorf("signstate: failed to write state: %w", err)
	}
	if err := unix.Fdatasync(int(s.f.Fd())); err != nil {
		return fmt.Errorf("signstate: failed to sync state: %w", err)
	}
	s.seq, s.state = seq, st
	return nil
}

// Close releases the file and its lock.
func (s *File) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.f.Close()
	s.lock.Close()
	return err
}

// Peek reads the state in a native state file without locking or changing
// it, for monitoring and tests while a signer holds the file. It returns
// the newest valid slot.
func Peek(path string) (State, error) {
	f, err := os.Open(path)
	if err != nil {
		return State{}, err
	}
	defer f.Close()
	s := &File{path: path, log: slog.New(slog.DiscardHandler), f: f}
	if err := s.load(); err != nil {
		return State{}, err
	}
	return s.state, nil
}

// ChainID returns the chain the state's sign bytes were signed for, or ""
// when the state carries no sign bytes.
func ChainID(s State) (string, error) {
	if len(s.SignBytes) == 0 {
		return "", nil
	}
	m, err := signbytes.Decode(s.Step == StepPropose, s.SignBytes)
	if err != nil {
		return "", fmt.Errorf("%w: sign bytes: %v", ErrCorrupt, err)
	}
	return m.ChainID, nil
}
