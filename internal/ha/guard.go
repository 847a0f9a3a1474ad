package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// ErrUnavailable marks a commit whose outcome is unknown or that could not
// be attempted (no quorum, no host, too much contention): nothing may be
// signed.
var ErrUnavailable = errors.New("cluster guard unavailable")

// Store is the shared store as the enclave reaches it (through its host).
type Store interface {
	// CompareAndSwap writes record if the stored record's revision is
	// still rev (0: there is none) and reports whether it did, with the
	// new revision. If it did not, it returns the record stored and its
	// revision (nil and 0 when there is none).
	CompareAndSwap(ctx context.Context, rev int64, record []byte) (swapped bool, current []byte, currentRev int64, err error)
}

// Guard commits one instance's decisions.
type Guard struct {
	store    Store
	key      Key
	instance string
	log      *slog.Logger

	mu      sync.Mutex
	rev     int64           // revision of the record last seen; -1: unknown
	last    signstate.State // the highest decision seen committed (authenticated)
	lastBy  string          // and its instance; "" before the first
	hasLast bool
}

// NewGuard returns the guard of instance, whose records key authenticates.
func NewGuard(store Store, key Key, instance string, log *slog.Logger) *Guard {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Guard{store: store, key: key, instance: instance, log: log, rev: -1}
}

// maxAttempts bounds the retries when other instances keep committing
// positions below the one asked for; each retry follows a commit elsewhere.
// commitBudget bounds a whole Commit, retries included: the signer holds
// its lock meanwhile, and the node's budget for a signature is 5 s.
const (
	maxAttempts  = 8
	commitBudget = 2 * time.Second
)

// Commit makes st the cluster's decision at its position, unless the
// cluster already holds a decision at or above it, and returns the
// decision in force and the instance that made it: st and this instance
// when it won. st's signature, if any, never leaves the enclave.
func (g *Guard) Commit(ctx context.Context, st signstate.State) (signstate.State, string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hasLast && st.HRS().Compare(g.last.HRS()) <= 0 {
		// A decision at or above this position was committed: whatever
		// the store says now (it may have been rolled back), this guard
		// never writes below what it saw.
		return g.last, g.lastBy, nil
	}
	rec, err := g.key.Seal(st, g.instance)
	if err != nil {
		return signstate.State{}, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, commitBudget)
	defer cancel()
	for range maxAttempts {
		swapped, cur, rev, err := g.store.CompareAndSwap(ctx, g.rev, rec)
		if err != nil {
			// The write may or may not have landed; the next commit
			// learns which from the store.
			g.rev = -1
			return signstate.State{}, "", fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if swapped {
			g.rev = rev
			g.saw(st, g.instance)
			return st, g.instance, nil
		}
		g.rev = rev
		if cur == nil {
			g.noteRollback(signstate.HRS{}, "")
			continue
		}
		won, inst, err := g.key.Open(cur)
		if err != nil {
			g.rev = -1
			return signstate.State{}, "", err
		}
		g.noteRollback(won.HRS(), inst)
		g.saw(won, inst)
		if won.HRS().Compare(st.HRS()) >= 0 {
			return won, inst, nil
		}
	}
	return signstate.State{}, "", fmt.Errorf("%w: the record kept changing under %d attempts", ErrUnavailable, maxAttempts)
}

// Latest reads the decision in force, authenticated, and remembers it: an
// instance that starts from an older state never commits or signs below
// it. ok is false when the store holds no decision yet.
func (g *Guard) Latest(ctx context.Context) (d signstate.State, by string, ok bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, commitBudget)
	defer cancel()
	// Revision -1 never matches: the swap only reads.
	_, cur, rev, err := g.store.CompareAndSwap(ctx, -1, []byte{0})
	if err != nil {
		return signstate.State{}, "", false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	g.rev = rev
	if cur == nil {
		g.noteRollback(signstate.HRS{}, "")
		return signstate.State{}, "", false, nil
	}
	won, inst, err := g.key.Open(cur)
	if err != nil {
		g.rev = -1
		return signstate.State{}, "", false, err
	}
	g.noteRollback(won.HRS(), inst)
	g.saw(won, inst)
	return won, inst, true, nil
}

// noteRollback logs a store that is behind what this guard saw committed:
// its record was deleted or rolled back by someone with access to etcd.
// Signing goes on (this instance's next commit restores a higher record,
// and its local state keeps it from regressing), but the operator must
// know: while the record was low, another instance could sign at a
// position this one already committed.
func (g *Guard) noteRollback(cur signstate.HRS, inst string) {
	if !g.hasLast || cur.Compare(g.last.HRS()) >= 0 {
		return
	}
	g.log.Error("the cluster record is behind what this instance saw committed: it was deleted or rolled back in etcd",
		"cluster", cur, "instance", inst, "seen", g.last.HRS())
}

// saw records an authenticated decision, if it is the highest yet.
func (g *Guard) saw(d signstate.State, by string) {
	if !g.hasLast || d.HRS().Compare(g.last.HRS()) > 0 {
		d.Signature = nil
		g.last, g.lastBy, g.hasLast = d, by, true
	}
}
