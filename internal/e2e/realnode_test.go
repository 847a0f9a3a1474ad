package e2e

import (
	"context"
	"fmt"
	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/privval"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
)

// versions are the node versions to run: $TMKMS_E2E_VERSIONS (comma
// separated) or all of Versions.
func versions() []string {
	if v := os.Getenv("TMKMS_E2E_VERSIONS"); v != "" {
		return strings.Split(v, ",")
	}
	return Versions
}

// TestRealNode runs a real CometBFT node of every version whose only
// validator key is held by our signer, over unix and over tcp with
// SecretConnection, and checks that blocks are produced and that the
// commit signatures verify against our key. From v0.38 on, vote extensions
// are enabled at height 2: a missing or misplaced extension signature
// halts those chains.
func TestRealNode(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: needs CometBFT node binaries")
	}
	for _, version := range versions() {
		for _, network := range []string{"unix", "tcp"} {
			t.Run(version+"/"+network, func(t *testing.T) {
				runChain(t, version, network)
			})
		}
	}
}

func runChain(t *testing.T, version, network string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := nodeBinary(ctx, t, version)
	key, err := signer.GenerateEd25519()
	if err != nil {
		t.Fatal(err)
	}
	laddr := fmt.Sprintf("tcp://127.0.0.1:%d", FreePort(t))
	if network == "unix" {
		laddr = "unix://" + filepath.Join(t.TempDir(), "pv.sock")
	}
	cfg := NodeConfig{Version: version, Laddr: laddr, PubKey: cmted25519.PubKey(key.PubKey().Bytes)}
	if hasVoteExtensions(version) {
		cfg.VoteExtensionsHeight = 2
	}
	node := InitNode(t, bin, cfg)
	s := StartSigner(t, laddr, node.ChainID, key, privval.Auto)
	node.Start(t, bin)

	const target = 6
	wctx, wcancel := context.WithTimeout(ctx, 90*time.Second)
	defer wcancel()
	if err := node.WaitHeight(wctx, target); err != nil {
		t.Fatalf("%v\nnode log tail:\n%s", err, tail(node.Logs(), 40))
	}
	if err := node.VerifyCommits(ctx, 1, target-1, cmted25519.PubKey(key.PubKey().Bytes)); err != nil {
		t.Fatal(err)
	}
	if st := s.LastState(); st.Height < target-1 {
		t.Fatalf("signer state at %v, chain at %d", st.HRS(), target)
	}
	if strings.Contains(node.Logs(), "CONSENSUS FAILURE") {
		t.Fatalf("node reported a consensus failure:\n%s", tail(node.Logs(), 40))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestNodeRestart kills the node mid-chain and starts it again: the signer
// notices, redials, and the chain goes on with no refusal, because the
// restarted node asks again for what the signer already signed only with
// the same sign bytes (timestamps aside).
func TestNodeRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: needs CometBFT node binaries")
	}
	const version = "v0.38.26"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := nodeBinary(ctx, t, version)
	key, _ := signer.GenerateEd25519()
	sock := filepath.Join(t.TempDir(), "pv.sock")
	node := InitNode(t, bin, NodeConfig{Version: version, Laddr: "unix://" + sock, PubKey: cmted25519.PubKey(key.PubKey().Bytes), VoteExtensionsHeight: 2})
	s := StartSigner(t, "unix://"+sock, node.ChainID, key, privval.Auto)
	node.Start(t, bin)
	if err := node.WaitHeight(ctx, 4); err != nil {
		t.Fatalf("%v\n%s", err, tail(node.Logs(), 30))
	}
	node.Stop()
	before, _ := node.lastHeightFromLogs()
	os.Remove(sock) // a killed node leaves its socket behind and cannot bind it again
	node.Start(t, bin)
	if err := node.WaitHeight(ctx, before+4); err != nil {
		t.Fatalf("after restart: %v\n%s", err, tail(node.Logs(), 30))
	}
	if err := node.VerifyCommits(ctx, before+1, before+3, cmted25519.PubKey(key.PubKey().Bytes)); err != nil {
		t.Fatal(err)
	}
	if n := s.Refused.Load(); n != 0 {
		t.Fatalf("the signer refused %d requests of an honest restarted node:\n%s", n, s.Logs)
	}
}
