package signer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	cmtproto "github.com/cometbft/cometbft/api/cometbft/types/v1"
	"github.com/cometbft/cometbft/types"

	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

type memStore struct{ fail error }

func (m *memStore) Save(context.Context, signstate.State) error { return m.fail }

func vote(h int64) *cmtproto.Vote {
	return &cmtproto.Vote{Type: types.PrevoteType, Height: h, Timestamp: time.Unix(1, 0).UTC(),
		BlockID: cmtproto.BlockID{Hash: bytes.Repeat([]byte{1}, 32), PartSetHeader: cmtproto.PartSetHeader{Total: 1, Hash: bytes.Repeat([]byte{2}, 32)}}}
}

// forEachKeyType runs f with a key of each type, made from seed: the
// guard's behaviour does not depend on the key, and must not.
func forEachKeyType(t *testing.T, seed byte, f func(t *testing.T, key Sealable)) {
	for _, kt := range KeyTypes() {
		t.Run(kt, func(t *testing.T) {
			key, err := NewKey(kt, bytes.Repeat([]byte{seed}, SeedSize))
			if err != nil {
				t.Fatal(err)
			}
			f(t, key)
		})
	}
}

func TestSignerRefusals(t *testing.T) { forEachKeyType(t, 3, testSignerRefusals) }

func testSignerRefusals(t *testing.T, key Sealable) {
	ctx := context.Background()
	var events []Event
	s := New(key, "c", signstate.State{}, &memStore{}, Options{MaxHeight: 10, Observe: func(e Event) { events = append(events, e) }})
	if _, err := s.SignVote(ctx, "c", vote(10), false); err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Err != nil || events[0].HRS.Height != 10 || events[0].Reused {
		t.Fatalf("a signature reported %+v, want one event at height 10 without error", events)
	}
	tests := []struct {
		name    string
		chain   string
		v       *cmtproto.Vote
		want    error
		storeEr error
	}{
		{"above max_height", "c", vote(11), ErrMaxHeight, nil},
		{"wrong chain", "d", vote(12), ErrChainID, nil},
		{"nil vote", "c", nil, ErrInvalidRequest, nil},
		{"bad block hash", "c", func() *cmtproto.Vote { v := vote(10); v.BlockID.Hash = []byte{1}; return v }(), ErrInvalidRequest, nil},
		{"unknown type", "c", func() *cmtproto.Vote { v := vote(10); v.Type = 7; return v }(), ErrInvalidRequest, nil},
		{"double sign", "c", func() *cmtproto.Vote { v := vote(10); v.BlockID.Hash = bytes.Repeat([]byte{9}, 32); return v }(), signstate.ErrDoubleSign, nil},
	}
	for _, tt := range tests {
		events = nil
		if _, err := s.SignVote(ctx, tt.chain, tt.v, false); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
		// Every refusal is reported once, with its error, whichever check
		// made it: metrics count the reports.
		if len(events) != 1 || !errors.Is(events[0].Err, tt.want) {
			t.Errorf("%s: reported %+v, want one event with %v", tt.name, events, tt.want)
		}
	}
}

// A store that fails (or a host that withholds its acknowledgement after
// seeing the signature) releases nothing, and the guard still moves: no
// other payload may be signed at that position, and a repeat is released
// only once its state is persisted.
func TestPersistFailureMovesTheGuard(t *testing.T) {
	forEachKeyType(t, 3, testPersistFailureMovesTheGuard)
}

func testPersistFailureMovesTheGuard(t *testing.T, key Sealable) {
	ctx := context.Background()
	store := &memStore{fail: errors.New("disk full")}
	s := New(key, "c", signstate.State{}, store, Options{})
	if out, err := s.SignVote(ctx, "c", vote(1), false); !errors.Is(err, ErrPersist) || out.Signature != nil {
		t.Fatalf("persist failure: %v %x", err, out.Signature)
	}
	other := vote(1)
	other.BlockID.Hash = bytes.Repeat([]byte{9}, 32)
	if _, err := s.SignVote(ctx, "c", other, false); !errors.Is(err, signstate.ErrDoubleSign) {
		t.Fatalf("another block after a failed persist: err = %v, want a double-sign refusal", err)
	}
	if _, err := s.SignVote(ctx, "c", vote(1), false); !errors.Is(err, ErrPersist) {
		t.Fatalf("repeat while the store still fails: %v", err)
	}
	store.fail = nil
	out, err := s.SignVote(ctx, "c", vote(1), false)
	if err != nil || !out.Reused || out.Signature == nil {
		t.Fatalf("repeat once the store works: %+v %v", out, err)
	}
}

func TestKeyNeverPrinted(t *testing.T) {
	forEachKeyType(t, 9, func(t *testing.T, key Sealable) {
		for _, s := range []string{fmt.Sprint(key), fmt.Sprintf("%#v", key), fmt.Sprintf("%x", key), slog.AnyValue(key).Resolve().String()} {
			if bytes.Contains([]byte(s), key.Seed()) || strings.Contains(strings.ToLower(s), "0909") || !strings.Contains(s, "redacted") {
				t.Fatalf("key printed: %s", s)
			}
		}
	})
}
