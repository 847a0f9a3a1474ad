package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/tmkms-nitro/tmkms-nitro/internal/config"
	"github.com/tmkms-nitro/tmkms-nitro/internal/ha/etcdlocal"
)

const (
	// etcdTxnID names the raw etcd round trip in the report.
	etcdTxnID = "etcd-txn"
	// etcdTxnValueSize is about a decision record's: a state record's sign
	// bytes, an instance name and a MAC.
	etcdTxnValueSize = 200
	// etcdTxnTimeout bounds one transaction; a healthy local cluster
	// answers in milliseconds.
	etcdTxnTimeout = 10 * time.Second
)

// etcdTxnKey is under the signer user's prefix, apart from the anchor's
// records (<prefix><chain id>/decision).
var etcdTxnKey = config.DefaultHAKeyPrefix + "bench/etcd-txn"

// etcdTxn times the transaction the anchor commits, without the enclave,
// the relay or the enclave's own client: a compare-and-swap on the key's revision,
// put if it holds, read if not, by clientv3 (gRPC over TLS), one at a time.
type etcdTxn struct {
	cli   *clientv3.Client
	value []byte
	rev   int64 // the key's revision after the last transaction
	lat   []time.Duration
	wall  time.Duration // of the recorded transactions
}

// newEtcdTxn connects to the cluster as the signer user and commits a
// first transaction, so that a cluster or a user that cannot serve the
// measurement fails the setup rather than the run.
func newEtcdTxn(ctx context.Context, c *etcdlocal.Cluster, auth etcdlocal.Auth) (*etcdTxn, error) {
	cli, err := c.Client(auth.Signer, auth.SignerPassword)
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd as %s: %w", auth.Signer, err)
	}
	// Its warnings (a retry when a member has not yet applied the user's
	// authentication) would go to stderr, in the middle of the progress
	// lines; a retry still counts in the latency it adds.
	cli.WithLogger(zap.NewNop())
	t := &etcdTxn{cli: cli, value: make([]byte, etcdTxnValueSize)}
	_, _ = rand.Read(t.value)
	if _, err := t.once(ctx); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

func (t *etcdTxn) close() { t.cli.Close() }

// run commits n transactions one after the other; with record, their
// latencies count.
func (t *etcdTxn) run(ctx context.Context, n int, record bool) error {
	start := time.Now()
	for range n {
		d, err := t.once(ctx)
		if err != nil {
			return err
		}
		if record {
			t.lat = append(t.lat, d)
		}
	}
	if record {
		t.wall += time.Since(start)
	}
	return nil
}

// once commits one transaction and returns its round trip. Each value
// differs, as each decision does.
func (t *etcdTxn) once(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, etcdTxnTimeout)
	defer cancel()
	binary.BigEndian.PutUint64(t.value, uint64(t.rev))
	start := time.Now()
	resp, err := t.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(etcdTxnKey), "=", t.rev)).
		Then(clientv3.OpPut(etcdTxnKey, string(t.value))).
		Else(clientv3.OpGet(etcdTxnKey)).
		Commit()
	d := time.Since(start)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%s: compare-and-swap of %s at revision %d: %w", etcdTxnID, etcdTxnKey, t.rev, err)
	case !resp.Succeeded:
		return 0, fmt.Errorf("%s: compare-and-swap of %s at revision %d failed: something else wrote the key", etcdTxnID, etcdTxnKey, t.rev)
	case resp.Header == nil:
		return 0, errors.New(etcdTxnID + ": a transaction answer without header")
	}
	t.rev = resp.Header.Revision
	return d, nil
}

// result summarizes the recorded transactions.
func (t *etcdTxn) result() *EtcdTxn {
	return &EtcdTxn{
		ID: etcdTxnID, Description: etcdTxnDescription, ValueBytes: etcdTxnValueSize,
		Latency: Summarize(t.lat), PerSec: ratio(float64(len(t.lat)), t.wall.Seconds()),
	}
}

const etcdTxnDescription = "compare-and-swap transactions (If mod_revision(key) == rev Then Put Else Get) by the anchor's etcd user, " +
	"with clientv3 (gRPC over TLS) from the bench process, one at a time, on (e)'s cluster, as many as (e) signed and right after each of its chunks"
