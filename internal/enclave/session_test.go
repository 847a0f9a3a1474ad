package enclave

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestSessionStop: a stopped session's handlers have all returned before
// what they use (the state channel, the anchor's connections) is closed,
// and everything is closed once stop returns.
func TestSessionStop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{cancel: cancel}
	var running atomic.Int32
	for range 3 {
		running.Add(1)
		s.wg.Go(func() {
			defer running.Add(-1)
			<-ctx.Done()
			time.Sleep(10 * time.Millisecond) // a handler finishing its request
		})
	}
	released := 0
	for range 2 {
		s.release = append(s.release, func() {
			if n := running.Load(); n != 0 {
				t.Errorf("released while %d handlers still ran", n)
			}
			released++
		})
	}
	s.stop()
	if released != 2 {
		t.Fatalf("%d of 2 resources released when stop returned", released)
	}
}

// TestRemoteStoreClose: closing the store closes its state channel, and a
// later Save redials.
func TestRemoteStoreClose(t *testing.T) {
	ctx := context.Background()
	h := startStateHost(t, t.TempDir())
	r := h.store()
	if _, err := r.Load(ctx); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if r.conn != nil {
		t.Fatal("the state channel is still open after Close")
	}
	if err := r.Save(ctx, st(1, 1)); err != nil {
		t.Fatalf("Save after Close: %v", err)
	}
	r.Close()
}
