package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	cmtsecp "github.com/cometbft/cometbft/crypto/secp256k1"

	"github.com/tmkms-nitro/tmkms-nitro/internal/sealedkey"
)

// TestLocalModeSecp256k1: a secp256k1 consensus key generated and sealed
// in local mode signs the blocks of a real CometBFT v1.0.1 node whose
// genesis allows secp256k1 validator keys; the commits verify with
// CometBFT's secp256k1 key. A sealed file whose type the host changed is
// refused by the enclave, and nothing is signed with it.
func TestLocalModeSecp256k1(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: needs CometBFT node binaries")
	}
	const version = "v1.0.1"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	node, err := Binary(ctx, version)
	if err != nil {
		t.Fatal(err)
	}
	bin := Programs(t)
	home := filepath.Join(t.TempDir(), "kms")
	laddr := "unix://" + filepath.Join(t.TempDir(), "pv.sock")
	n := InitNode(t, node, NodeConfig{Version: version, Laddr: laddr, VoteExtensionsHeight: 2, PubKey: nil})
	pub := localInit(t, bin, home, n.ChainID, "--key-type", "secp256k1")
	if len(pub) != 33 {
		t.Fatalf("public key of %d bytes, want a 33-byte compressed secp256k1 key", len(pub))
	}
	pk := cmtsecp.PubKey(pub)
	n.SetValidator(t, pk)

	// The host rewrites the sealed file as an ed25519 key (type and a
	// public key of that size): the enclave must not sign with it.
	sealedPath := filepath.Join(home, "secrets", "secret.key")
	orig, err := os.ReadFile(sealedPath)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := sealedkey.Parse(orig)
	if err != nil || sk.KeyType != "secp256k1" || !bytes.Equal(sk.PublicKey, pub) {
		t.Fatalf("sealed file: %+v %v", sk, err)
	}
	forged := *sk
	forged.KeyType, forged.PublicKey = "ed25519", pub[1:]
	b, err := sealedkey.Marshal(&forged)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sealedPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := startLocal(t, bin, home, laddr)
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(bad.logs.String(), "failed to unseal the consensus key") {
		if time.Now().After(deadline) {
			t.Fatalf("the retyped sealed key was not refused:\n%s", bad.logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if strings.Contains(bad.logs.String(), "configured and signing") {
		t.Fatalf("the enclave signed with a retyped key:\n%s", bad.logs)
	}
	bad.stop(syscall.SIGTERM)
	if err := os.WriteFile(sealedPath, orig, 0o600); err != nil {
		t.Fatal(err)
	}

	ls := startLocal(t, bin, home, laddr)
	n.Start(t, node)
	if err := n.WaitHeight(ctx, 5); err != nil {
		t.Fatalf("%v\nnode:\n%s\nsigner:\n%s", err, tail(n.Logs(), 30), ls.logs)
	}
	if err := n.VerifyCommits(ctx, 1, 4, pk); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(ls.logs.String(), "refused to sign") {
		t.Fatalf("a signature was refused:\n%s", ls.logs)
	}
	// The node knows the validator by CometBFT's secp256k1 address.
	var st struct {
		ValidatorInfo struct {
			Address string          `json:"address"`
			PubKey  json.RawMessage `json:"pub_key"`
		} `json:"validator_info"`
	}
	if err := n.rpc(ctx, "/status", &st); err != nil {
		t.Fatal(err)
	}
	if st.ValidatorInfo.Address != pk.Address().String() || !strings.Contains(string(st.ValidatorInfo.PubKey), "PubKeySecp256k1") {
		t.Fatalf("the node's validator is %s %s, want %s", st.ValidatorInfo.Address, st.ValidatorInfo.PubKey, pk.Address())
	}
	ls.stop(syscall.SIGTERM)
}
