package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
)

// ErrNoEnclave is returned when no enclave answered within StartupTimeout
// of start.
var ErrNoEnclave = errors.New("no enclave answers")

// ErrNotConfigured is returned when the enclave answered but could not be
// configured within StartupTimeout of start (KMS unreachable: is
// vsock-proxy running?).
var ErrNotConfigured = errors.New("the enclave could not be configured")

// ErrEnclaveRefused marks a configuration the enclave refused for good: a
// KMS policy denial or a bad setting. Retrying cannot help; the operator
// must act.
var ErrEnclaveRefused = errors.New("the enclave refused its configuration")

// Configurator keeps the enclave configured: it pushes the configuration,
// and pushes it again every Interval, which refreshes the enclave's AWS
// credentials, reconfigures an enclave that restarted, and lets a restarted
// helper take over a running enclave.
type Configurator struct {
	// Dial connects to the enclave's config port.
	Dial func(ctx context.Context) (net.Conn, error)
	// Request builds the configuration with current credentials.
	Request func(ctx context.Context) (*enclaveproto.Configure, error)
	// Configured is called after each successful (re)configuration of an
	// enclave that was not configured by this helper before.
	Configured func(*enclaveproto.Configured)
	// Pushed, if set, is told after every push whether the enclave
	// answered with its configuration.
	Pushed   func(ok bool)
	Interval time.Duration // default 1 s
	// StartupTimeout ends Run with ErrNoEnclave when no enclave has
	// answered this long after start, or ErrNotConfigured when none could
	// be configured (default 30 s). Once one has been, later outages are
	// waited out: the enclave restarts, the helper must not.
	StartupTimeout time.Duration
	Log            *slog.Logger
}

// Run configures until ctx ends or the enclave refuses for good.
func (c *Configurator) Run(ctx context.Context) error {
	interval := c.Interval
	if interval <= 0 {
		interval = time.Second
	}
	var conn *enclaveproto.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	startup := c.StartupTimeout
	if startup <= 0 {
		startup = 30 * time.Second
	}
	start, reached := time.Now(), false
	waiting, configured, everConfigured := false, false, false
	for {
		if conn == nil {
			dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			nc, err := c.Dial(dctx)
			cancel()
			if err != nil {
				if c.Pushed != nil {
					c.Pushed(false)
				}
				if !reached && time.Since(start) > startup {
					return fmt.Errorf("%w within %s: %v", ErrNoEnclave, startup, err)
				}
				if !waiting {
					c.Log.Warn("waiting for the enclave", "err", err)
					waiting = true
				}
				configured = false
			} else {
				waiting, reached = false, true
				conn = enclaveproto.NewConn(nc, enclaveproto.MaxPayload(enclaveproto.TypeConfigured))
			}
		}
		if conn != nil {
			resp, err := c.push(ctx, conn)
			if c.Pushed != nil {
				c.Pushed(err == nil)
			}
			var perr *enclaveproto.Error
			switch {
			case errors.As(err, &perr) && (perr.Code == enclaveproto.CodeKMSAccessDenied || perr.Code == enclaveproto.CodeBadConfig):
				return fmt.Errorf("%w: %s", ErrEnclaveRefused, perr.Message)
			case err != nil && !everConfigured && time.Since(start) > startup:
				return fmt.Errorf("%w within %s: %v", ErrNotConfigured, startup, err)
			case err != nil:
				c.Log.Warn("failed to configure the enclave, retrying", "err", err)
				conn.Close()
				conn, configured = nil, false
			case !configured:
				configured, everConfigured = true, true
				if c.Configured != nil {
					c.Configured(resp)
				}
			}
		}
		wait := interval
		if conn == nil {
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

func (c *Configurator) push(ctx context.Context, conn *enclaveproto.Conn) (*enclaveproto.Configured, error) {
	req, err := c.Request(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	m, err := conn.Call(ctx, req)
	if err != nil {
		return nil, err
	}
	resp, ok := m.(*enclaveproto.Configured)
	if !ok {
		return nil, fmt.Errorf("%w: %s in answer to Configure", enclaveproto.ErrUnexpectedType, m.Type())
	}
	return resp, nil
}
