package ha

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/tmkms-nitro/tmkms-nitro/internal/e2e"
	"github.com/tmkms-nitro/tmkms-nitro/internal/ha/hatest"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

func decision(h int64, payload byte) signstate.State {
	return signstate.State{Height: h, Step: signstate.StepPrevote, SignBytes: []byte{payload, payload}}
}

// stored opens the store's record with k.
func stored(t *testing.T, s *hatest.Store, k Key) (signstate.State, string) {
	t.Helper()
	rec, _ := s.Record()
	if rec == nil {
		return signstate.State{}, ""
	}
	st, inst, err := k.Open(rec)
	if err != nil {
		t.Fatalf("the store holds a record its key does not open: %v", err)
	}
	return st, inst
}

// mustCommit commits d on g and checks the decision in force.
func mustCommit(t *testing.T, g *Guard, d signstate.State, want signstate.State, wantBy string) {
	t.Helper()
	got, by, err := g.Commit(context.Background(), d)
	if err != nil || by != wantBy || got.HRS() != want.HRS() || !bytes.Equal(got.SignBytes, want.SignBytes) {
		t.Fatalf("Commit(%v %x) = %v %x by %q, %v; want %v %x by %q", d.HRS(), d.SignBytes, got.HRS(), got.SignBytes, by, err, want.HRS(), want.SignBytes, wantBy)
	}
}

// TestGuardCommitFaults runs the guard against the in-memory store with
// each failure a cluster or a hostile host can show. Each case fails if
// the guard's defence against it is removed.
func TestGuardCommitFaults(t *testing.T) {
	ctx := context.Background()
	key := testKey(t, 1, "chain-1")
	tests := []struct {
		name string
		run  func(t *testing.T, s *hatest.Store, a, b *Guard, logs *e2e.SyncBuffer)
	}{
		{"one winner per position", func(t *testing.T, s *hatest.Store, a, b *Guard, _ *e2e.SyncBuffer) {
			mustCommit(t, a, decision(1, 0xA), decision(1, 0xA), "a")
			mustCommit(t, b, decision(1, 0xB), decision(1, 0xA), "a")
			mustCommit(t, b, decision(2, 0xB), decision(2, 0xB), "b")
			mustCommit(t, a, decision(2, 0xA), decision(2, 0xB), "b")
		}},
		{"lost answer", func(t *testing.T, s *hatest.Store, a, b *Guard, _ *e2e.SyncBuffer) {
			// The swap landed but a never heard so: it must not report a
			// win it cannot prove, and must never put another payload at
			// that position afterwards.
			mustCommit(t, a, decision(1, 0xA), decision(1, 0xA), "a")
			s.Inject(hatest.LostAnswer)
			if _, _, err := a.Commit(ctx, decision(2, 0xA)); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("lost answer: err = %v, want ErrUnavailable", err)
			}
			if st, by := stored(t, s, key); st.Height != 2 || by != "a" {
				t.Fatalf("the store holds %v by %q, want the lost swap's record", st.HRS(), by)
			}
			_, rev := s.Record()
			mustCommit(t, a, decision(2, 0xC), decision(2, 0xA), "a")
			mustCommit(t, b, decision(2, 0xB), decision(2, 0xA), "a")
			if _, now := s.Record(); now != rev {
				t.Fatalf("the record was rewritten at its position after a lost answer (revision %d, then %d)", rev, now)
			}
			mustCommit(t, a, decision(2, 0xA), decision(2, 0xA), "a")
		}},
		{"stale revision", func(t *testing.T, s *hatest.Store, a, b *Guard, _ *e2e.SyncBuffer) {
			mustCommit(t, a, decision(1, 0xA), decision(1, 0xA), "a")
			s.Inject(hatest.StaleRevision)
			calls := s.Calls()
			mustCommit(t, a, decision(2, 0xA), decision(2, 0xA), "a")
			if n := s.Calls() - calls; n != 2 {
				t.Fatalf("%d swaps after a stale revision, want 2 (one refused, one with the current revision)", n)
			}
			if st, _ := stored(t, s, key); st.Height != 2 {
				t.Fatalf("the store holds %v, want height 2", st.HRS())
			}
		}},
		{"stale revision every time", func(t *testing.T, s *hatest.Store, a, b *Guard, _ *e2e.SyncBuffer) {
			mustCommit(t, a, decision(1, 0xA), decision(1, 0xA), "a")
			for range maxAttempts {
				s.Inject(hatest.StaleRevision)
			}
			if _, _, err := a.Commit(ctx, decision(2, 0xA)); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("a record that keeps changing: err = %v, want ErrUnavailable", err)
			}
			if st, _ := stored(t, s, key); st.Height != 1 {
				t.Fatalf("the store holds %v, want height 1", st.HRS())
			}
		}},
		{"no quorum", func(t *testing.T, s *hatest.Store, a, b *Guard, _ *e2e.SyncBuffer) {
			s.Inject(hatest.NoQuorum)
			if got, _, err := a.Commit(ctx, decision(1, 0xA)); !errors.Is(err, ErrUnavailable) || got.SignBytes != nil {
				t.Fatalf("without quorum: %v, %v; want ErrUnavailable and no decision", got.HRS(), err)
			}
			if rec, _ := s.Record(); rec != nil {
				t.Fatal("a record was written without quorum")
			}
			mustCommit(t, a, decision(1, 0xA), decision(1, 0xA), "a")
		}},
		{"forged record at the same position", func(t *testing.T, s *hatest.Store, a, b *Guard, _ *e2e.SyncBuffer) {
			// Someone with the store's credentials but not the key writes
			// the position a is about to commit: a must not take it as
			// the cluster's decision (its signer would sign it).
			forged, err := testKey(t, 2, "chain-1").Seal(decision(5, 0xF), "a")
			if err != nil {
				t.Fatal(err)
			}
			s.Inject(hatest.Forged(forged))
			if got, _, err := a.Commit(ctx, decision(5, 0xA)); !errors.Is(err, ErrForged) || got.SignBytes != nil {
				t.Fatalf("forged record: %x, %v; want ErrForged and no decision", got.SignBytes, err)
			}
			if rec, _ := s.Record(); !bytes.Equal(rec, forged) {
				t.Fatal("the guard overwrote a record it could not authenticate")
			}
		}},
		{"forged records", func(t *testing.T, s *hatest.Store, a, b *Guard, _ *e2e.SyncBuffer) {
			foreign, _ := testKey(t, 1, "chain-2").Seal(decision(100, 1), "mallory")
			for name, rec := range map[string][]byte{
				"garbage":       []byte("not a record"),
				"another chain": foreign,
				"oversized":     bytes.Repeat([]byte{1}, MaxRecordSize+1),
			} {
				s.Inject(hatest.Forged(rec))
				if _, _, err := a.Commit(ctx, decision(101, 1)); !errors.Is(err, ErrForged) {
					t.Errorf("%s: err = %v, want ErrForged", name, err)
				}
			}
		}},
		{"rolled back", func(t *testing.T, s *hatest.Store, a, b *Guard, logs *e2e.SyncBuffer) {
			mustCommit(t, a, decision(3, 0xA), decision(3, 0xA), "a")
			s.Put(nil)
			calls := s.Calls()
			// Below what a saw committed: answered from memory, whatever
			// the store says now.
			mustCommit(t, a, decision(2, 0xC), decision(3, 0xA), "a")
			if s.Calls() != calls {
				t.Fatal("the guard asked the store about a position below one it saw committed")
			}
			// b never saw height 3 and may take it now: that is why the
			// rollback must be reported.
			mustCommit(t, b, decision(3, 0xB), decision(3, 0xB), "b")
			mustCommit(t, a, decision(4, 0xA), decision(4, 0xA), "a")
			s.Put(nil)
			mustCommit(t, a, decision(5, 0xA), decision(5, 0xA), "a")
			if !strings.Contains(logs.String(), "deleted or rolled back") {
				t.Fatalf("a rolled-back record was not logged:\n%s", logs)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &hatest.Store{}
			logs := &e2e.SyncBuffer{}
			log := slog.New(slog.NewTextHandler(logs, nil))
			tt.run(t, s, NewGuard(s, key, "a", log), NewGuard(s, key, "b", log), logs)
		})
	}
}

// TestGuardLatest reads the decision in force: nothing on an empty store,
// a refusal on a forged one, and a remembered decision that later commits
// never go below.
func TestGuardLatest(t *testing.T) {
	ctx := context.Background()
	key := testKey(t, 1, "chain-1")
	s := &hatest.Store{}
	a, b := NewGuard(s, key, "a", nil), NewGuard(s, key, "b", nil)
	if _, _, ok, err := b.Latest(ctx); ok || err != nil {
		t.Fatalf("empty store: ok %v, %v", ok, err)
	}
	mustCommit(t, a, decision(7, 0xA), decision(7, 0xA), "a")
	if d, by, ok, err := b.Latest(ctx); !ok || err != nil || d.Height != 7 || by != "a" {
		t.Fatalf("Latest = %v %q %v %v", d.HRS(), by, ok, err)
	}
	s.Put(nil)
	mustCommit(t, b, decision(6, 0xB), decision(7, 0xA), "a")
	s.Inject(hatest.NoQuorum)
	if _, _, _, err := b.Latest(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("without quorum: %v", err)
	}
	s.Put([]byte("forged"))
	if _, _, _, err := b.Latest(ctx); !errors.Is(err, ErrForged) {
		t.Fatalf("forged: %v", err)
	}
}

// TestGuardRace has three instances commit conflicting decisions at each
// position at once: all must agree on one.
func TestGuardRace(t *testing.T) {
	key := testKey(t, 1, "chain-1")
	s := &hatest.Store{}
	guards := []*Guard{NewGuard(s, key, "a", nil), NewGuard(s, key, "b", nil), NewGuard(s, key, "c", nil)}
	hatest.Race(t, len(guards), 1, 50, func(h int64, i int) (signstate.State, error) {
		st, _, err := guards[i].Commit(context.Background(), decision(h, byte(i+1)))
		return st, err
	})
}
