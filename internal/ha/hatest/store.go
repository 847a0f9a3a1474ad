// Package hatest is an in-memory compare-and-swap store with the
// semantics of the cluster's decision record (package ha's Store), and
// with the failures a real cluster or a hostile host can show injected on
// demand. It is for tests: no program imports it.
package hatest

import (
	"context"
	"errors"
	"sync"
)

var (
	// ErrNoQuorum is the error of a store that cannot decide: nothing was
	// written.
	ErrNoQuorum = errors.New("hatest: no quorum")
	// ErrLostAnswer is the error of a swap whose answer was lost: the
	// swap may have been applied.
	ErrLostAnswer = errors.New("hatest: the answer was lost")
)

// Fault is a failure the store shows on one call to CompareAndSwap.
type Fault struct {
	kind   faultKind
	record []byte
}

type faultKind int

const (
	lostAnswer faultKind = iota + 1
	staleRevision
	noQuorum
	forged
)

var (
	// LostAnswer applies the swap as asked (if the revision matches), then
	// fails as if the answer never came back.
	LostAnswer = Fault{kind: lostAnswer}
	// StaleRevision makes another writer rewrite the stored record, if
	// any, just before the swap, so the caller's revision is stale.
	StaleRevision = Fault{kind: staleRevision}
	// NoQuorum fails without writing anything.
	NoQuorum = Fault{kind: noQuorum}
)

// Forged replaces the stored record with record (written by no enclave)
// just before the swap.
func Forged(record []byte) Fault { return Fault{kind: forged, record: record} }

// Store is the record and its revision. Revisions grow with every write,
// as etcd's do; 0 means there is no record. The zero Store is empty and
// ready to use, and safe for concurrent use.
type Store struct {
	mu     sync.Mutex
	record []byte
	rev    int64 // the record's; 0: none
	last   int64 // the store's last revision
	faults []Fault
	calls  int
}

// Inject queues faults, one for each coming call to CompareAndSwap.
func (s *Store) Inject(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, faults...)
}

// Put writes record as another writer would (another instance, or someone
// with access to the store); nil deletes it.
func (s *Store) Put(record []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.put(record)
}

func (s *Store) put(record []byte) {
	s.last++
	s.record, s.rev = append([]byte(nil), record...), s.last
	if record == nil {
		s.record, s.rev = nil, 0
	}
}

// Record returns the stored record and its revision.
func (s *Store) Record() ([]byte, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.record...), s.rev
}

// Calls returns how many times CompareAndSwap was called.
func (s *Store) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// CompareAndSwap writes record if the stored record's revision is rev (0:
// there is none; negative: never, it only reads), as ha.Store specifies,
// after applying the next injected fault.
func (s *Store) CompareAndSwap(ctx context.Context, rev int64, record []byte) (bool, []byte, int64, error) {
	if err := ctx.Err(); err != nil {
		return false, nil, 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	var f Fault
	if len(s.faults) > 0 {
		f, s.faults = s.faults[0], s.faults[1:]
	}
	switch f.kind {
	case noQuorum:
		return false, nil, 0, ErrNoQuorum
	case staleRevision:
		if s.record != nil {
			s.put(s.record)
		}
	case forged:
		s.put(f.record)
	}
	swapped := rev >= 0 && rev == s.rev
	if swapped {
		s.put(record)
	}
	switch {
	case f.kind == lostAnswer:
		return false, nil, 0, ErrLostAnswer
	case swapped:
		return true, nil, s.rev, nil
	}
	return false, append([]byte(nil), s.record...), s.rev, nil
}
