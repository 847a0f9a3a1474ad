package host

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
)

// pipeEnclave is an enclave's config port on net.Pipe: each dial is
// answered by a goroutine that ends when the configurator closes its end.
type pipeEnclave struct {
	mu      sync.Mutex
	down    bool
	answer  func(n int) enclaveproto.Message // the answer to the n-th Configure, from 1
	n       int
	dropped bool // drop the connection after the next answer
}

func (e *pipeEnclave) set(f func(*pipeEnclave)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(e)
}

func (e *pipeEnclave) dial(context.Context) (net.Conn, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.down {
		return nil, errors.New("connection refused")
	}
	c, s := net.Pipe()
	go e.serve(s)
	return c, nil
}

func (e *pipeEnclave) serve(nc net.Conn) {
	c := enclaveproto.NewConn(nc, enclaveproto.MaxPayload(enclaveproto.TypeConfigure))
	defer c.Close()
	for {
		_, id, err := c.Receive(context.Background())
		if err != nil {
			return
		}
		e.mu.Lock()
		e.n++
		resp, drop := e.answer(e.n), e.dropped
		e.dropped = false
		e.mu.Unlock()
		if c.Send(context.Background(), resp, id) != nil || drop {
			return
		}
	}
}

func configured(int) enclaveproto.Message {
	return &enclaveproto.Configured{ConsensusPubKey: make([]byte, 32)}
}

func refusing(code string) func(int) enclaveproto.Message {
	return func(int) enclaveproto.Message { return &enclaveproto.Error{Code: code, Message: "no"} }
}

// configuratorRun is one Configurator.Run against e, and what it reported.
type configuratorRun struct {
	configured, pushedOK, pushedFail int
	err                              error
}

// runConfigurator runs a Configurator (1 s interval, 10 s startup
// timeout) on e for at most d of the bubble's time, stepping the enclave
// through script, a list of changes each applied at its time.
func runConfigurator(e *pipeEnclave, d time.Duration, script map[time.Duration]func(*pipeEnclave)) *configuratorRun {
	var mu sync.Mutex
	out := &configuratorRun{}
	c := &Configurator{
		Dial: e.dial,
		Request: func(context.Context) (*enclaveproto.Configure, error) {
			return &enclaveproto.Configure{ChainID: "c", Addresses: []string{"unix:///v.sock"}, SealedConsensusKey: []byte{1}}, nil
		},
		Configured: func(*enclaveproto.Configured) { mu.Lock(); out.configured++; mu.Unlock() },
		Pushed: func(ok bool) {
			mu.Lock()
			defer mu.Unlock()
			if ok {
				out.pushedOK++
			} else {
				out.pushedFail++
			}
		},
		Interval:       time.Second,
		StartupTimeout: 10 * time.Second,
		Log:            slog.New(slog.DiscardHandler),
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for at, f := range script {
		wg.Go(func() {
			select {
			case <-time.After(at):
				e.set(f)
			case <-ctx.Done():
			}
		})
	}
	out.err = c.Run(ctx)
	cancel()
	wg.Wait()
	return out
}

// TestConfiguratorRun drives Configurator.Run against an enclave on
// net.Pipe, in a synctest bubble, so minutes of retries take no time.
func TestConfiguratorRun(t *testing.T) {
	tests := []struct {
		name   string
		e      *pipeEnclave
		run    time.Duration
		script map[time.Duration]func(*pipeEnclave)
		// want
		err             error
		configured      int
		minOK, minFail  int
		maxFail         int
		enclaveAnswered int // at least
	}{
		{name: "configures once and keeps pushing", e: &pipeEnclave{answer: configured}, run: 5500 * time.Millisecond,
			err: context.DeadlineExceeded, configured: 1, minOK: 6, enclaveAnswered: 6},
		{name: "KMS access denied ends Run", e: &pipeEnclave{answer: refusing(enclaveproto.CodeKMSAccessDenied)}, run: time.Minute,
			err: ErrEnclaveRefused, minFail: 1, maxFail: 1},
		{name: "a bad configuration ends Run", e: &pipeEnclave{answer: refusing(enclaveproto.CodeBadConfig)}, run: time.Minute,
			err: ErrEnclaveRefused, minFail: 1, maxFail: 1},
		{name: "no enclave within the startup timeout", e: &pipeEnclave{down: true}, run: time.Minute,
			err: ErrNoEnclave, minFail: 10},
		{name: "an enclave that never gets configured", e: &pipeEnclave{answer: refusing(enclaveproto.CodeKMS)}, run: time.Minute,
			err: ErrNotConfigured, minFail: 10},
		{name: "an enclave that comes up late", e: &pipeEnclave{down: true, answer: configured}, run: 8 * time.Second,
			script: map[time.Duration]func(*pipeEnclave){5 * time.Second: func(e *pipeEnclave) { e.down = false }},
			err:    context.DeadlineExceeded, configured: 1, minOK: 2, minFail: 4},
		{name: "an enclave that restarts at once is configured again", e: &pipeEnclave{answer: configured}, run: 7 * time.Second,
			script: map[time.Duration]func(*pipeEnclave){2500 * time.Millisecond: func(e *pipeEnclave) { e.dropped = true }},
			err:    context.DeadlineExceeded, configured: 2, minOK: 4, minFail: 1},
		{name: "a restarted enclave is configured again, however long it was away", e: &pipeEnclave{answer: configured}, run: 40 * time.Second,
			script: map[time.Duration]func(*pipeEnclave){
				2500 * time.Millisecond: func(e *pipeEnclave) { e.down, e.dropped = true, true },
				30 * time.Second:        func(e *pipeEnclave) { e.down = false },
			},
			err: context.DeadlineExceeded, configured: 2, minOK: 10, minFail: 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				got := runConfigurator(tt.e, tt.run, tt.script)
				if !errors.Is(got.err, tt.err) {
					t.Errorf("Run = %v, want %v", got.err, tt.err)
				}
				if got.configured != tt.configured {
					t.Errorf("Configured called %d times, want %d", got.configured, tt.configured)
				}
				if got.pushedOK < tt.minOK || got.pushedFail < tt.minFail || tt.maxFail > 0 && got.pushedFail > tt.maxFail {
					t.Errorf("pushes: %d answered, %d failed; want at least %d and %d (at most %d failed)", got.pushedOK, got.pushedFail, tt.minOK, tt.minFail, tt.maxFail)
				}
				if tt.e.n < tt.enclaveAnswered {
					t.Errorf("the enclave answered %d pushes, want at least %d", tt.e.n, tt.enclaveAnswered)
				}
			})
		})
	}
}
