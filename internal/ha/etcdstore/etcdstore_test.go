package etcdstore_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"testing"
	"time"

	cmtproto "github.com/cometbft/cometbft/api/cometbft/types/v1"
	"github.com/cometbft/cometbft/types"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/tmkms-nitro/tmkms-nitro/internal/e2e"
	"github.com/tmkms-nitro/tmkms-nitro/internal/ha"
	"github.com/tmkms-nitro/tmkms-nitro/internal/ha/etcdlocal"
	"github.com/tmkms-nitro/tmkms-nitro/internal/ha/etcdstore"
	"github.com/tmkms-nitro/tmkms-nitro/internal/ha/hatest"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

const chain = "ha-chain"

var seed = bytes.Repeat([]byte{7}, 32)

func open(t *testing.T, c *etcdlocal.Cluster, instance string, log *slog.Logger) *etcdstore.Store {
	t.Helper()
	tlsc, err := etcdstore.ClientTLS(c.CA, c.Cert, c.Key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := etcdstore.Open(etcdstore.Options{Endpoints: c.Endpoints, TLS: tlsc, Prefix: "/test/", ChainID: chain, Instance: instance, LeaseTTL: 3 * time.Second, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func guard(t *testing.T, s ha.Store, instance string, log *slog.Logger) *ha.Guard {
	k, err := ha.DeriveKey(seed, chain)
	if err != nil {
		t.Fatal(err)
	}
	return ha.NewGuard(s, k, instance, log)
}

func decision(h int64, payload byte) signstate.State {
	return signstate.State{Height: h, Step: signstate.StepPrevote, SignBytes: []byte{payload, payload}}
}

// TestGuard exercises the guard against a real 3-member cluster: one
// winner per position, forged and foreign records refused, a deleted
// record noticed, and no decision without quorum.
func TestGuard(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an etcd cluster")
	}
	c := etcdlocal.StartT(t, 3)
	ctx := context.Background()
	logs := &e2e.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	a := guard(t, open(t, c, "a", log), "a", log)
	b := guard(t, open(t, c, "b", log), "b", log)

	t.Run("one winner", func(t *testing.T) {
		got, inst, err := a.Commit(ctx, decision(1, 0xA))
		if err != nil || inst != "a" || !bytes.Equal(got.SignBytes, []byte{0xA, 0xA}) {
			t.Fatalf("first commit: %v %q %v", got, inst, err)
		}
		got, inst, err = b.Commit(ctx, decision(1, 0xB))
		if err != nil || inst != "a" || !bytes.Equal(got.SignBytes, []byte{0xA, 0xA}) {
			t.Fatalf("conflicting commit at the same position must return a's decision: %v %q %v", got, inst, err)
		}
		if got, inst, err = b.Commit(ctx, decision(2, 0xB)); err != nil || inst != "b" || got.Height != 2 {
			t.Fatalf("b at the next position: %v %q %v", got, inst, err)
		}
		if got, inst, err = a.Commit(ctx, decision(1, 0xC)); err != nil || inst != "a" || got.Height != 1 || got.SignBytes[0] != 0xA {
			t.Fatalf("a again at its own position: must get its decision back without writing: %v %q %v", got, inst, err)
		}
		if got, inst, err = a.Commit(ctx, decision(2, 0xA)); err != nil || inst != "b" || got.Height != 2 || got.SignBytes[0] != 0xB {
			t.Fatalf("a behind b: must learn b's decision: %v %q %v", got, inst, err)
		}
	})

	t.Run("race", func(t *testing.T) {
		guards := []*ha.Guard{a, b, guard(t, open(t, c, "c", log), "c", log)}
		hatest.Race(t, len(guards), 10, 29, func(h int64, i int) (signstate.State, error) {
			st, _, err := guards[i].Commit(ctx, decision(h, byte(i+1)))
			return st, err
		})
	})

	cli := client(t, c)
	key := "/test/" + chain + "/decision"
	t.Run("forged", func(t *testing.T) {
		other, _ := ha.DeriveKey(bytes.Repeat([]byte{8}, 32), chain)
		foreign, _ := other.Seal(decision(100, 1), "mallory")
		for name, v := range map[string][]byte{"garbage": []byte("not a record"), "another key": foreign, "oversized": bytes.Repeat([]byte{1}, ha.MaxRecordSize+1)} {
			if _, err := cli.Put(ctx, key, string(v)); err != nil {
				t.Fatal(err)
			}
			if _, _, err := a.Commit(ctx, decision(101, 1)); !errors.Is(err, ha.ErrForged) {
				t.Fatalf("%s in etcd: err = %v, want ErrForged", name, err)
			}
		}
	})

	t.Run("deleted", func(t *testing.T) {
		if _, err := cli.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		if _, inst, err := a.Commit(ctx, decision(200, 1)); err != nil || inst != "a" {
			t.Fatalf("after deletion: %q %v", inst, err)
		}
		if !bytes.Contains([]byte(logs.String()), []byte("deleted or rolled back")) {
			t.Fatalf("a deleted record was not logged:\n%s", logs)
		}
	})

	t.Run("no quorum", func(t *testing.T) {
		c.Stop(1)
		if _, _, err := a.Commit(ctx, decision(300, 1)); err != nil {
			t.Fatalf("one member down: %v", err)
		}
		c.Stop(2)
		start := time.Now()
		if _, _, err := b.Commit(ctx, decision(301, 1)); !errors.Is(err, ha.ErrUnavailable) {
			t.Fatalf("without quorum: err = %v, want ErrUnavailable", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("a commit without quorum took %v", d)
		}
		if err := c.RestartStopped(); err != nil {
			t.Fatal(err)
		}
		// The failed attempt may or may not have landed; either way the
		// next commit settles it, and a conflicting one loses.
		deadline := time.Now().Add(20 * time.Second)
		for {
			got, inst, err := b.Commit(ctx, decision(301, 1))
			if err == nil {
				if inst != "b" || got.Height != 301 {
					t.Fatalf("after quorum returned: %v %q", got, inst)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no commit after quorum returned: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if got, inst, err := a.Commit(ctx, decision(301, 2)); err != nil || inst != "b" || got.SignBytes[0] != 1 {
			t.Fatalf("conflict after recovery: %v %q %v", got, inst, err)
		}
	})
}

func client(t *testing.T, c *etcdlocal.Cluster) *clientv3.Client {
	tlsc, err := etcdstore.ClientTLS(c.CA, c.Cert, c.Key)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints, TLS: tlsc, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

type memStore struct{}

func (memStore) Save(context.Context, signstate.State) error { return nil }

// TestSigners: two signers with the same key on one cluster. A conflicting
// vote is refused by whichever loses; the same vote with another timestamp
// gets the winner's signature and timestamp; no signature is released
// without the cluster.
func TestSigners(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an etcd cluster")
	}
	c := etcdlocal.StartT(t, 3)
	ctx := context.Background()
	key, _ := signer.NewEd25519(seed)
	var signers []*signer.Signer
	for _, name := range []string{"a", "b"} {
		g := guard(t, open(t, c, name, nil), name, nil)
		signers = append(signers, signer.New(key, chain, signstate.State{}, memStore{}, signer.Options{Cluster: g}))
	}
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	vote := func(h int64, block byte, ts time.Time) *cmtproto.Vote {
		return &cmtproto.Vote{Type: types.PrevoteType, Height: h, Timestamp: ts,
			BlockID: cmtproto.BlockID{Hash: bytes.Repeat([]byte{block}, 32), PartSetHeader: cmtproto.PartSetHeader{Total: 1, Hash: bytes.Repeat([]byte{2}, 32)}}}
	}
	for h := int64(1); h <= 5; h++ {
		first, second := signers[h%2], signers[(h+1)%2]
		a, err := first.SignVote(ctx, chain, vote(h, 1, t0), false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := second.SignVote(ctx, chain, vote(h, 9, t0), false); !errors.Is(err, signstate.ErrDoubleSign) {
			t.Fatalf("height %d: conflicting vote on the other instance: %v", h, err)
		}
		b, err := second.SignVote(ctx, chain, vote(h, 1, t0.Add(time.Second)), false)
		if err != nil || !bytes.Equal(a.Signature, b.Signature) || !b.Timestamp.Equal(t0) {
			t.Fatalf("height %d: same vote on the other instance: %x vs %x, %v, %v", h, a.Signature, b.Signature, b.Timestamp, err)
		}
		if !ed25519.Verify(key.PubKey().Bytes, types.VoteSignBytes(chain, vote(h, 1, t0)), b.Signature) {
			t.Fatalf("height %d: bad signature", h)
		}
	}
	// An instance starting from an imported state (no sign bytes: only the
	// block is known) must answer repeats at that position with the
	// committed signature, never commit a new decision over it.
	h := int64(20)
	imported := signstate.State{Height: h, Step: signstate.StepPrevote,
		BlockID: signstate.BlockID{Hash: bytes.Repeat([]byte{1}, 32), PartsTotal: 1, PartsHash: bytes.Repeat([]byte{2}, 32)}}
	b := signer.New(key, chain, imported, memStore{}, signer.Options{Cluster: guard(t, open(t, c, "b2", nil), "b2", nil)})
	a, err := signers[0].SignVote(ctx, chain, vote(h, 1, t0), false)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		got, err := b.SignVote(ctx, chain, vote(h, 1, t0.Add(time.Duration(i)*time.Second)), false)
		if err != nil || !bytes.Equal(got.Signature, a.Signature) || !got.Timestamp.Equal(t0) {
			t.Fatalf("repeat %d on an instance with an imported state: %v %v, want the committed signature", i, got.Timestamp, err)
		}
	}

	c.Close()
	if out, err := signers[0].SignVote(ctx, chain, vote(30, 1, t0), false); !errors.Is(err, signer.ErrCluster) || out.Signature != nil {
		t.Fatalf("without etcd: %x %v, want ErrCluster and nothing signed", out.Signature, err)
	}
}
