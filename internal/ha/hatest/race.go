package hatest

import (
	"bytes"
	"sync"
	"testing"

	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// Race has n instances commit at once at each height from first to last,
// instance i through commit(h, i), and fails t unless they all end with
// the same decision at every height.
func Race(t testing.TB, n int, first, last int64, commit func(h int64, i int) (signstate.State, error)) {
	t.Helper()
	for h := first; h <= last; h++ {
		var wg sync.WaitGroup
		results := make([]signstate.State, n)
		for i := range n {
			wg.Go(func() {
				st, err := commit(h, i)
				if err != nil {
					t.Error(err)
				}
				results[i] = st
			})
		}
		wg.Wait()
		for i := range results {
			if results[i].HRS() != results[0].HRS() || !bytes.Equal(results[i].SignBytes, results[0].SignBytes) {
				t.Fatalf("height %d: instances disagree on the decision: %v", h, results)
			}
		}
	}
}
