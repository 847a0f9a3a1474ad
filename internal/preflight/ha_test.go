package preflight

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tmkms-nitro/tmkms-nitro/internal/ha"
	"github.com/tmkms-nitro/tmkms-nitro/internal/ha/etcdlocal"
	"github.com/tmkms-nitro/tmkms-nitro/internal/ha/etcdstore"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// TestHA runs the [ha] check against a real etcd: reachable and empty,
// holding a decision, behind the local state, with a wrong CA, and
// without quorum.
func TestHA(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an etcd cluster")
	}
	c := etcdlocal.StartT(t, 3)
	table := func(ca string) string {
		return fmt.Sprintf("[ha]\nendpoints = ['%s']\nca_file = '%s'\ncert_file = '%s'\nkey_file = '%s'\ninstance = 'signer-a'\n",
			strings.Join(c.Endpoints, "', '"), ca, c.Cert, c.Key)
	}
	commit := func(h int64) {
		tlsc, err := etcdstore.ClientTLS(c.CA, c.Cert, c.Key)
		if err != nil {
			t.Fatal(err)
		}
		st, err := etcdstore.Open(etcdstore.Options{Endpoints: c.Endpoints, TLS: tlsc, Prefix: "/tmkms-nitro/", ChainID: chainID, Instance: "signer-b"})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		// Written over whatever is there, as a restore from backup would.
		k, _ := ha.DeriveKey(bytes.Repeat([]byte{7}, 32), chainID)
		rec, err := k.Seal(signstate.State{Height: h, Step: signstate.StepPrevote, SignBytes: []byte{1}}, "signer-b")
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		_, _, rev, err := st.CompareAndSwap(ctx, -1, rec)
		if err == nil {
			_, _, _, err = st.CompareAndSwap(ctx, rev, rec)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name   string
		before func()
		ca     string
		status Status
		detail string
	}{
		{name: "empty", status: Pass, detail: "no decision yet; instances alive: none"},
		{name: "a decision", before: func() { commit(7) }, status: Pass, detail: "last decision 7/0/prevote by signer-b"},
		{name: "local state ahead", before: func() { commit(3) }, status: Warn, detail: "the local state (5/0/prevote) is ahead"},
		{name: "wrong CA", ca: c.Cert, status: Fail, detail: "etcd"},
		{name: "no quorum", before: func() { c.Stop(0); c.Stop(1) }, status: Fail, detail: "etcd unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			ca := tc.ca
			if ca == "" {
				ca = c.CA
			}
			f := newFixture(t)
			f.extra = table(ca)
			got, ok := find(f.run(), CheckHA)
			if !ok || got.Status != tc.status || !strings.Contains(got.Detail, tc.detail) {
				t.Fatalf("ha check: %s %q (hint %q), want %s containing %q", got.Status, got.Detail, got.Hint, tc.status, tc.detail)
			}
		})
	}
}
