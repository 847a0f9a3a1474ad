// Package etcdstore is the host's side of high availability: it relays
// the enclave's compare-and-swap of its decision record to an etcd
// cluster, keeps this instance listed under a lease, and watches etcd's
// health. It cannot authenticate a record (only an enclave can, package
// ha): it reads a record's position and instance for its logs and
// metrics, and refuses to relay what cannot be a record at all.
//
// Keys, under the configured prefix:
//
//	<prefix><chain_id>/decision              the last committed decision
//	<prefix><chain_id>/instances/<instance>  one per live instance (leased)
package etcdstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/tmkms-nitro/tmkms-nitro/internal/config"
	"github.com/tmkms-nitro/tmkms-nitro/internal/ha"
	"github.com/tmkms-nitro/tmkms-nitro/internal/metrics"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// Options configure Open.
type Options struct {
	Endpoints []string
	TLS       *tls.Config
	Prefix    string // ends with "/"
	ChainID   string
	Instance  string
	LeaseTTL  time.Duration
	Log       *slog.Logger
	Metrics   *metrics.Metrics // optional
}

// Store is an open connection to the cluster.
type Store struct {
	o        Options
	cli      *clientv3.Client
	decision string
	members  string // instances prefix
}

// commitTimeout bounds one compare-and-swap, so that the enclave (which
// gives each state-channel round trip 2 s) hears the answer.
const commitTimeout = 1500 * time.Millisecond

// Dial opens the cluster of cfg's [ha] table for its chain.
func Dial(cfg *config.Config, log *slog.Logger, m *metrics.Metrics) (*Store, error) {
	h := cfg.HA
	tlsc, err := ClientTLS(h.CAFile, h.CertFile, h.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("[ha]: %w", err)
	}
	return Open(Options{Endpoints: h.Endpoints, TLS: tlsc, Prefix: h.KeyPrefix, ChainID: cfg.ChainID, Instance: h.Instance,
		LeaseTTL: time.Duration(h.LeaseTTL) * time.Second, Log: log, Metrics: m})
}

// Open connects to etcd. It does not wait for the cluster: Run reports its
// health, and a commit without quorum fails.
func Open(o Options) (*Store, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            o.Endpoints,
		TLS:                  o.TLS,
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	base := o.Prefix + o.ChainID + "/"
	return &Store{o: o, cli: cli, decision: base + "decision", members: base + "instances/"}, nil
}

// Close ends the connection; the instance's lease expires after its TTL.
func (s *Store) Close() error { return s.cli.Close() }

// CompareAndSwap implements the enclave's ha.Store in one linearizable
// transaction: write record if the decision's revision is still rev,
// else read it.
func (s *Store) CompareAndSwap(ctx context.Context, rev int64, record []byte) (bool, []byte, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	start := time.Now()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(s.decision), "=", rev)).
		Then(clientv3.OpPut(s.decision, string(record))).
		Else(clientv3.OpGet(s.decision)).
		Commit()
	latency := time.Since(start)
	if err != nil {
		s.observe(latency, metrics.CommitUnavailable, "")
		s.o.Log.Error("could not commit the enclave's decision to etcd; it will not sign", "err", err)
		return false, nil, 0, fmt.Errorf("etcd unavailable: %w", err)
	}
	if resp.Header == nil || !resp.Succeeded && len(resp.Responses) != 1 {
		s.observe(latency, metrics.CommitUnavailable, "")
		return false, nil, 0, errors.New("etcd unavailable: malformed transaction response")
	}
	if resp.Succeeded {
		// Our enclave wrote it, under the name the helper gave it.
		s.observe(latency, metrics.CommitWon, s.o.Instance)
		return true, nil, resp.Header.Revision, nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		s.observe(latency, metrics.CommitStale, "")
		return false, nil, 0, nil
	}
	cur := kvs[0]
	if len(cur.Value) > ha.MaxRecordSize {
		// Relaying it would only break the state channel's frame limit.
		s.o.Log.Error("the decision key in etcd holds something no signer wrote (too large for a decision record); no instance will sign until it is removed",
			"key", s.decision, "bytes", len(cur.Value))
		return false, nil, 0, fmt.Errorf("%w: %s holds %d bytes, larger than any decision record", ha.ErrForged, s.decision, len(cur.Value))
	}
	hrs, inst, ok := ha.Peek(cur.Value)
	mine, _, _ := ha.Peek(record)
	if ok && hrs.Compare(mine) >= 0 && inst != s.o.Instance {
		s.observe(latency, metrics.CommitLost, inst)
		s.o.Log.Info("another instance committed this position first", "winner", inst, "winner_hrs", hrs, "ours", mine)
	} else {
		s.observe(latency, metrics.CommitStale, inst)
	}
	return false, cur.Value, cur.ModRevision, nil
}

func (s *Store) observe(latency time.Duration, result, decider string) {
	if s.o.Metrics != nil {
		s.o.Metrics.HACommit(latency, result, decider)
	}
}

// Run keeps this instance listed under a lease and checks etcd's health
// until ctx ends, logging changes: etcd losing or regaining quorum,
// instances appearing and disappearing, another instance taking over the
// signing. Standbys report who signs too.
func (s *Store) Run(ctx context.Context) {
	t := time.NewTicker(s.period())
	defer t.Stop()
	var (
		lease   clientv3.LeaseID
		up      = true
		seen    []string
		signing string // the instance that made the latest decision
		bad     string // the last complaint about the record, logged once
	)
	for {
		var err error
		lease, err = s.renew(ctx, lease)
		var snap Snapshot
		if err == nil {
			snap, err = s.Snapshot(ctx)
		}
		alive := snap.Alive
		if errors.Is(err, ha.ErrForged) {
			// etcd answers; the enclaves refuse the record and sign nothing.
			if err.Error() != bad {
				s.o.Log.Error("the decision key in etcd holds something no signer wrote; no instance will sign until it is removed", "err", err)
				bad = err.Error()
			}
			err = nil
		} else if err == nil {
			bad = ""
		}
		switch {
		case err != nil && ctx.Err() == nil:
			if up {
				s.o.Log.Error("etcd is unavailable: no signature will be released until it has quorum again", "err", err)
			}
			up = false
			lease = 0
			seen = nil
		case err == nil:
			if !up {
				s.o.Log.Info("etcd is available again")
			}
			up = true
			if !slices.Equal(alive, seen) {
				s.o.Log.Info("signer instances alive", "instances", strings.Join(alive, ","), "count", len(alive))
				seen = alive
			}
			if snap.By != signing {
				s.o.Log.Info("signing instance", "instance", snap.By, "decision", snap.Decision)
				signing = snap.By
				if s.o.Metrics != nil {
					s.o.Metrics.HADecider(signing)
				}
			}
		}
		if s.o.Metrics != nil {
			s.o.Metrics.HAHealth(up, len(seen))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// renew keeps the instance key alive, granting a new lease when the old
// one is gone (expired while etcd was unreachable).
func (s *Store) renew(ctx context.Context, lease clientv3.LeaseID) (clientv3.LeaseID, error) {
	ctx, cancel := context.WithTimeout(ctx, s.period())
	defer cancel()
	if lease != 0 {
		if _, err := s.cli.KeepAliveOnce(ctx, lease); err == nil {
			return lease, nil
		}
	}
	g, err := s.cli.Grant(ctx, int64(max(s.o.LeaseTTL/time.Second, 1)))
	if err != nil {
		return 0, err
	}
	if _, err := s.cli.Put(ctx, s.members+s.o.Instance, time.Now().UTC().Format(time.RFC3339), clientv3.WithLease(g.ID)); err != nil {
		return 0, err
	}
	return g.ID, nil
}

// alive lists the instances holding a lease, with a linearizable read (so
// it fails without quorum).
func (s *Store) alive(ctx context.Context) ([]string, error) {
	resp, err := s.cli.Get(ctx, s.members, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	var names []string
	for _, kv := range resp.Kvs {
		names = append(names, strings.TrimPrefix(string(kv.Key), s.members))
	}
	return names, nil
}

// Snapshot is what the cluster holds for the chain, as `check` reports
// it. The decision is not authenticated here (only enclaves can).
type Snapshot struct {
	Key      string         // the decision's etcd key
	Decision *signstate.HRS // nil: no decision yet
	By       string         // the instance that made it
	Alive    []string       // instances holding a lease
}

// Snapshot reads the decision and the live instances with linearizable
// reads, so it fails without quorum. It waits at most a health period.
func (s *Store) Snapshot(ctx context.Context) (Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, s.period())
	defer cancel()
	snap := Snapshot{Key: s.decision}
	resp, err := s.cli.Get(ctx, s.decision)
	if err != nil {
		return snap, fmt.Errorf("etcd unavailable: %w", err)
	}
	var bad error
	if len(resp.Kvs) > 0 {
		hrs, inst, ok := ha.Peek(resp.Kvs[0].Value)
		if ok {
			snap.Decision, snap.By = &hrs, inst
		} else {
			bad = fmt.Errorf("%w: %s holds something no signer wrote (it does not decode as a decision record)", ha.ErrForged, s.decision)
		}
	}
	if snap.Alive, err = s.alive(ctx); err != nil {
		return snap, fmt.Errorf("etcd unavailable: %w", err)
	}
	return snap, bad
}

// period is how often Run checks etcd, and how long each check may take.
func (s *Store) period() time.Duration { return max(s.o.LeaseTTL/3, time.Second) }

// ClientTLS builds the TLS configuration of [ha]: the CA that verifies the
// etcd servers and this instance's client certificate.
func ClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("etcd CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("etcd CA: no PEM certificate in %s", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("etcd client certificate: %w", err)
	}
	return &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
