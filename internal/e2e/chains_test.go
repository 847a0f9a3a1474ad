package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"

	"github.com/tmkms-nitro/tmkms-nitro/internal/config"
)

// TestTwoChainsOneEnclave: one helper and one enclave process, in local
// mode, sign for two real CometBFT nodes of different chains and versions
// with one key sealed for both. Both chains make blocks. Killing one node
// leaves the other chain signing; so does a corrupt state file for one
// chain when the signer restarts; and nothing is refused on the way.
func TestTwoChainsOneEnclave(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: needs CometBFT node binaries")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	bin := Programs(t)
	home := filepath.Join(t.TempDir(), "kms")
	versions := []string{"v0.38.26", "v1.0.1"}
	var nodes []*Node
	var binaries []string
	args := []string{"local", "init", "--home", home}
	for i, v := range versions {
		b := nodeBinary(ctx, t, v)
		laddr := "unix://" + filepath.Join(t.TempDir(), fmt.Sprintf("pv%d.sock", i))
		n := InitNode(t, b, NodeConfig{Version: v, Laddr: laddr, VoteExtensionsHeight: 2})
		nodes, binaries = append(nodes, n), append(binaries, b)
		args = append(args, "--chain-id", n.ChainID, "--address", n.ChainID+"="+laddr)
	}
	a, b := nodes[0], nodes[1]
	if a.ChainID == b.ChainID {
		t.Fatalf("both nodes have chain id %s", a.ChainID)
	}
	if out, err := exec.Command(filepath.Join(bin, "tmkms-nitro-helper"), args...).CombinedOutput(); err != nil {
		t.Fatalf("local init: %v\n%s", err, out)
	}
	cfg, err := config.Load(filepath.Join(home, "tmkms.toml"))
	if err != nil || len(cfg.Validators) != 2 {
		t.Fatalf("tmkms.toml: %v, %d validators, want 2", err, len(cfg.Validators))
	}
	for _, n := range nodes {
		n.SetValidator(t, cmted25519.PubKey(chainPubKey(t, home, n.ChainID)))
	}
	pk := cmted25519.PubKey(chainPubKey(t, home, a.ChainID))

	ls := startLocal(t, bin, home, "")
	for i, n := range nodes {
		n.Start(t, binaries[i])
	}
	for _, n := range nodes {
		if err := n.WaitHeight(ctx, 5); err != nil {
			t.Fatalf("chain %s: %v\nsigner:\n%s", n.ChainID, err, ls.logs)
		}
		if err := n.VerifyCommits(ctx, 1, 4, pk); err != nil {
			t.Fatalf("chain %s: %v", n.ChainID, err)
		}
	}

	// One node goes away: the other chain goes on.
	a.Stop()
	advances(ctx, t, b, 3, ls)

	// The signer restarts with chain A's state file corrupt: chain A is
	// not served (and says why), chain B is.
	ls.stop(syscall.SIGTERM)
	if err := os.WriteFile(cfg.Validators[0].StateFilePath, []byte("{corrupt"), 0o600); err != nil {
		t.Fatal(err)
	}
	ls = startLocal(t, bin, home, "")
	advances(ctx, t, b, 3, ls)
	if logs := ls.logs.String(); !strings.Contains(logs, "stopped serving this chain") || !strings.Contains(logs, a.ChainID) {
		t.Fatalf("the corrupt state file of chain %s was not reported:\n%s", a.ChainID, logs)
	}
	if err := b.VerifyCommits(ctx, 5, 8, pk); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(ls.logs.String(), "refused to sign") {
		t.Fatalf("a signature was refused:\n%s", ls.logs)
	}
	ls.stop(syscall.SIGTERM)
}

// advances waits for n to make k more blocks.
func advances(ctx context.Context, t *testing.T, n *Node, k int64, ls *localSigner) {
	t.Helper()
	h, err := n.Height(ctx)
	if err == nil {
		err = n.WaitHeight(ctx, h+k)
	}
	if err != nil {
		t.Fatalf("chain %s did not advance: %v\nnode:\n%s\nsigner:\n%s", n.ChainID, err, tail(n.Logs(), 30), ls.logs)
	}
}

// chainPubKey reads the public key local init wrote for chainID.
func chainPubKey(t *testing.T, home, chainID string) []byte {
	t.Helper()
	_, pub := pubKeyFile(t, filepath.Join(home, "pubkey-"+config.FileName(chainID)+".json"))
	if len(pub) != 32 {
		t.Fatalf("public key of chain %s: %d bytes, want 32", chainID, len(pub))
	}
	return pub
}
