package preflight

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/tmkms-nitro/tmkms-nitro/internal/sealedkey"
)

// TestAnchorCheck: the anchor line says who is trusted with the state, and
// fails where the enclave would refuse to sign (the key bound to an anchor
// the configuration dropped or swapped, another chain) or could not
// (no majority of members reachable).
func TestAnchorCheck(t *testing.T) {
	fpA, fpB := strings.Repeat("a", 64), strings.Repeat("b", 64)
	consensus := func(chains []string, anchor string) string {
		b, err := sealedkey.Marshal(&sealedkey.Key{Version: 2, Purpose: sealedkey.Consensus, KeyType: "ed25519", PublicKey: bytes.Repeat([]byte{7}, 32),
			KMSKeyID: keyARN, Region: region, Origin: sealedkey.Generated, ChainIDs: chains, Anchor: anchor, Ciphertext: []byte{1, 2, 3}})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	anchorFile := func(fp string) string {
		b, err := sealedkey.Marshal(&sealedkey.Key{Version: 2, Purpose: sealedkey.Anchor, KMSKeyID: keyARN, Region: region,
			Origin: sealedkey.Generated, Anchor: fp, Ciphertext: []byte{1, 2, 3}, Sealed: make([]byte, 64)})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	var up []string
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		up = append(up, "https://"+ln.Addr().String())
	}
	down := []string{"https://127.0.0.1:1", "https://127.0.0.1:2", up[0]}
	table := func(endpoints []string) string {
		return fmt.Sprintf("[ha]\nendpoints = ['%s']\nsealed_anchor_path = 'secrets/anchor.sealed'\ninstance = 'signer-a'\n", strings.Join(endpoints, "', '"))
	}
	chains := []string{chainID}
	cases := []struct {
		name         string
		key, anchor  string
		extra        string
		status       Status
		detail, hint string
	}{
		{"anchored", consensus(chains, fpA), anchorFile(fpA), table(up), Pass, "anchor aaaaaaaaaaaaaaaa; 3 of 3 etcd members accept TCP connections", ""},
		{"no majority of members", consensus(chains, fpA), anchorFile(fpA), table(down), Fail, "1 of 3 etcd members", "signs nothing without a majority"},
		{"[ha] dropped", consensus(chains, fpA), "", "", Fail, "the consensus key is bound to anchor aaaaaaaaaaaaaaaa, but [ha] has no sealed_anchor_path", "restore the [ha] table"},
		{"another anchor", consensus(chains, fpA), anchorFile(fpB), table(up), Fail, "sealed_anchor_path holds anchor bbbbbbbbbbbbbbbb", "refuses another anchor"},
		{"a key file as the anchor", consensus(chains, fpA), consensus(chains, fpA), table(up), Fail, "holds a sealed consensus key, not an anchor", ""},
		{"another chain", consensus([]string{"other-1"}, fpA), anchorFile(fpA), table(up), Fail, `sealed for chains ["other-1"] only, not chain_id "testnet-croeseid-4"`, "fixed when it is sealed"},
		{"key not bound to the anchor", consensus(chains, ""), anchorFile(fpA), table(up), Warn, "the consensus key is not bound to it", "could drop the anchor"},
		{"no anchor", consensus(chains, ""), "", "", Warn, "no anchor: across enclave restarts the enclave trusts this host's state file", "init --ha-endpoints"},
		{"host-relayed [ha]", consensus(chains, ""), "", "", Warn, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			f.write("secrets/secret.key", c.key, 0o600)
			if c.anchor != "" {
				f.write("secrets/anchor.sealed", c.anchor, 0o600)
			}
			f.extra = c.extra
			if c.name == "host-relayed [ha]" {
				f.write("ca.pem", "x", 0o600)
				f.extra = fmt.Sprintf("[ha]\nendpoints = ['%s']\nca_file = 'ca.pem'\ncert_file = 'ca.pem'\nkey_file = 'ca.pem'\ninstance = 'a'\n", up[0])
				c.detail = "[ha] without an anchor: this helper relays decisions to etcd and is trusted with the outcome"
			}
			got, ok := find(f.run(), CheckAnchor)
			if !ok || got.Status != c.status || !strings.Contains(got.Detail, c.detail) || !strings.Contains(got.Hint, c.hint) {
				t.Fatalf("anchor check: %s %q (hint %q), want %s containing %q (hint %q)", got.Status, got.Detail, got.Hint, c.status, c.detail, c.hint)
			}
		})
	}
}
