// Package testlog keeps what code under test logs, for the test to look
// at.
package testlog

import (
	"context"
	"log/slog"
	"slices"
	"sync"
)

// Recorder is a slog.Handler that keeps each record's message. After, when
// set, is called with each message once it is kept, in the goroutine that
// logged it, so that a test can hold that goroutine there.
type Recorder struct {
	After func(msg string)

	mu   sync.Mutex
	msgs []string
}

func (r *Recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *Recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *Recorder) WithGroup(string) slog.Handler            { return r }
func (r *Recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, rec.Message)
	r.mu.Unlock()
	if r.After != nil {
		r.After(rec.Message)
	}
	return nil
}

// Messages returns the messages kept so far, oldest first.
func (r *Recorder) Messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}
