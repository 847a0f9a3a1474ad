package anchor_test

import (
	"bytes"
	"context"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// BenchmarkCompareAndSwap compares one decision commit through the
// enclave's client (TLS + its hand-written gRPC call over net/http's
// HTTP/2, one call per commit) with the same transaction through etcd's
// own gRPC client, on one 3-member cluster: what the small client costs
// on the anchored signing path.
func BenchmarkCompareAndSwap(b *testing.B) {
	c, bundle, auth := cluster(b)
	record := bytes.Repeat([]byte{1}, 200)
	ctx := context.Background()
	b.Run("anchor", func(b *testing.B) {
		cl := newClient(b, bundle, "bench-anchor", direct(bundle))
		_, _, rev, err := cl.CompareAndSwap(ctx, 0, record)
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for b.Loop() {
			ok, _, r, err := cl.CompareAndSwap(ctx, rev, record)
			if err != nil || !ok {
				b.Fatalf("swap at %d: %v %v", rev, ok, err)
			}
			rev = r
		}
	})
	b.Run("grpc", func(b *testing.B) {
		cli, err := c.Client(auth.Signer, auth.SignerPassword)
		if err != nil {
			b.Fatal(err)
		}
		defer cli.Close()
		key := prefix + "bench-grpc/decision"
		r, err := cli.Put(ctx, key, string(record))
		if err != nil {
			b.Fatal(err)
		}
		rev := r.Header.Revision
		b.ResetTimer()
		for b.Loop() {
			t, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
				Then(clientv3.OpPut(key, string(record))).Else(clientv3.OpGet(key)).Commit()
			if err != nil || !t.Succeeded {
				b.Fatalf("swap at %d: %v", rev, err)
			}
			rev = t.Header.Revision
		}
	})
}
