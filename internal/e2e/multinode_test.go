package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	cmtproto "github.com/cometbft/cometbft/api/cometbft/types/v1"
	cmtprivval "github.com/cometbft/cometbft/privval"
	"github.com/cometbft/cometbft/types"
)

// TestSeveralNodes: one signer serving two nodes of one chain (address is
// a list) keeps one guard: the same request from both nodes gets the
// identical signature, a conflicting one is refused whichever node sends it.
func TestSeveralNodes(t *testing.T) {
	chain := "multi-chain"
	bin, home := localHome(t, chain)
	var clients []*cmtprivval.SignerClient
	var addrs []string
	for range 2 {
		c, sock := nodeSide(t, chain)
		clients = append(clients, c)
		addrs = append(addrs, "'unix://"+sock+"'")
	}
	path := filepath.Join(home, "tmkms.toml")
	cfg, _ := os.ReadFile(path)
	cfg = regexp.MustCompile(`(?m)^address = .*$`).ReplaceAll(cfg, []byte("address = ["+addrs[0]+", "+addrs[1]+"]"))
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	ls := startLocal(t, bin, home, "")
	for i, c := range clients {
		if err := c.WaitForConnection(30 * time.Second); err != nil {
			t.Fatalf("node %d: %v\n%s", i, err, ls.logs)
		}
	}
	t0 := time.Now().UTC()
	for h := int64(1); h <= 3; h++ {
		first, second := clients[h%2], clients[(h+1)%2]
		v := &cmtproto.Vote{Type: types.PrevoteType, Height: h, BlockID: faultBlock(h, 0), Timestamp: t0}
		if err := first.SignVote(chain, v, true); err != nil {
			t.Fatal(err)
		}
		dup := &cmtproto.Vote{Type: types.PrevoteType, Height: h, BlockID: faultBlock(h, 0), Timestamp: t0.Add(time.Second)}
		if err := second.SignVote(chain, dup, true); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(v.Signature, dup.Signature) || !dup.Timestamp.Equal(t0) {
			t.Fatalf("height %d: the two nodes got different signatures", h)
		}
		conflict := &cmtproto.Vote{Type: types.PrevoteType, Height: h, BlockID: faultBlock(h, 0xB), Timestamp: t0}
		if code := remoteCodeOf(second.SignVote(chain, conflict, true)); code != 2 {
			t.Fatalf("height %d: conflicting vote from the other node: code %d, want 2", h, code)
		}
	}
}

func remoteCodeOf(err error) int {
	if rse, ok := err.(*cmtprivval.RemoteSignerError); ok {
		return rse.Code
	}
	return -1
}
