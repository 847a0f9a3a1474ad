package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"

	"github.com/tmkms-nitro/tmkms-nitro/internal/sealedkey"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// localSigner is a `tmkms-nitro-helper local start` process.
type localSigner struct {
	cmd  *exec.Cmd
	logs *SyncBuffer
	done chan struct{}
}

func startLocal(t *testing.T, bin, home, laddr string) *localSigner {
	t.Helper()
	ls := &localSigner{logs: &SyncBuffer{}, done: make(chan struct{})}
	args := []string{"local", "start", "--home", home}
	if laddr != "" { // "": the addresses in tmkms.toml
		args = append(args, "--address", laddr)
	}
	ls.cmd = exec.Command(filepath.Join(bin, "tmkms-nitro-helper"), args...)
	ls.cmd.Stdout, ls.cmd.Stderr = ls.logs, ls.logs
	if err := ls.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { ls.cmd.Wait(); close(ls.done) }()
	t.Cleanup(func() {
		ls.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("local start log:\n%s", ls.logs)
		}
	})
	return ls
}

func (ls *localSigner) stop(sig syscall.Signal) {
	ls.cmd.Process.Signal(sig)
	select {
	case <-ls.done:
	case <-time.After(10 * time.Second):
		ls.cmd.Process.Kill()
		<-ls.done
	}
}

// enclavePIDs returns the pids the helper reported starting.
func (ls *localSigner) enclavePIDs() []int {
	var pids []int
	for _, m := range regexp.MustCompile(`started the local enclave" pid=(\d+)`).FindAllStringSubmatch(ls.logs.String(), -1) {
		p, _ := strconv.Atoi(m[1])
		pids = append(pids, p)
	}
	return pids
}

// localHome is an end-to-end test's start (it skips under -short): the
// programs built, and a home made by local init for chainID.
func localHome(t *testing.T, chainID string) (bin, home string) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin = Programs(t)
	home = filepath.Join(t.TempDir(), "kms")
	localInit(t, bin, home, chainID)
	return bin, home
}

func localInit(t *testing.T, bin, home, chainID string, flags ...string) []byte {
	t.Helper()
	args := append([]string{"local", "init", "--home", home, "--chain-id", chainID}, flags...)
	out, err := exec.Command(filepath.Join(bin, "tmkms-nitro-helper"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("local init: %v\n%s", err, out)
	}
	value, pub := pubKeyFile(t, filepath.Join(home, "pubkey.json"))
	if !bytes.Contains(out, []byte(value)) {
		t.Fatalf("local init did not print the public key:\n%s", out)
	}
	return pub
}

// pubKeyFile reads a public key file local init wrote (CometBFT JSON):
// its base64 value, and the key.
func pubKeyFile(t *testing.T, path string) (string, []byte) {
	t.Helper()
	var pk struct{ Value string }
	data, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(data, &pk)
	}
	var pub []byte
	if err == nil {
		pub, err = base64.StdEncoding.DecodeString(pk.Value)
	}
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
	return pk.Value, pub
}

// TestLocalMode runs the whole system in local mode against a real
// CometBFT node: the enclave process unseals the key through the local KMS
// and signs; killing the enclave, then the helper, only pauses signing.
func TestLocalMode(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: needs CometBFT node binaries")
	}
	const version = "v0.38.26"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	node := nodeBinary(ctx, t, version)
	bin := Programs(t)
	home := filepath.Join(t.TempDir(), "kms")
	laddr := "unix://" + filepath.Join(t.TempDir(), "pv.sock")
	n := InitNode(t, node, NodeConfig{Version: version, Laddr: laddr, VoteExtensionsHeight: 2, PubKey: nil})
	pub := localInit(t, bin, home, n.ChainID)
	pk := cmted25519.PubKey(pub)
	n.SetValidator(t, pk)

	ls := startLocal(t, bin, home, laddr)
	n.Start(t, node)
	if err := n.WaitHeight(ctx, 4); err != nil {
		t.Fatalf("%v\nnode:\n%s", err, tail(n.Logs(), 30))
	}
	if err := n.VerifyCommits(ctx, 1, 3, pk); err != nil {
		t.Fatal(err)
	}

	// Kill the enclave: it is restarted, reconfigured, and signs on.
	pids := ls.enclavePIDs()
	if len(pids) != 1 {
		t.Fatalf("enclave pids %v", pids)
	}
	syscall.Kill(pids[0], syscall.SIGKILL)
	h, _ := n.Height(ctx)
	if err := n.WaitHeight(ctx, h+3); err != nil {
		t.Fatalf("after killing the enclave: %v", err)
	}
	if len(ls.enclavePIDs()) != 2 {
		t.Fatalf("enclave not restarted: %v", ls.enclavePIDs())
	}

	// Kill the helper: the enclave lives on; a new helper takes it over.
	ls.stop(syscall.SIGKILL)
	running := ls.enclavePIDs()[1]
	ls2 := startLocal(t, bin, home, laddr)
	h, _ = n.Height(ctx)
	if err := n.WaitHeight(ctx, h+3); err != nil {
		t.Fatalf("after restarting the helper: %v\n%s", err, ls2.logs)
	}
	if !strings.Contains(ls2.logs.String(), "already running") {
		t.Errorf("the new helper did not reuse the running enclave %d", running)
	}
	for _, l := range []*localSigner{ls, ls2} {
		if strings.Contains(l.logs.String(), "refused to sign") {
			t.Fatalf("a signature was refused:\n%s", l.logs)
		}
	}
	ls2.stop(syscall.SIGTERM)
	st, err := signstate.Open(filepath.Join(home, "state", "priv_validator_state.json"), signstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got, _ := n.Height(ctx); st.State().Height < got {
		t.Fatalf("state file at %v behind the chain at %d", st.State().HRS(), got)
	}
}

// TestLocalModeWrongPCR0: an enclave binary other than the one the key
// policy pins (a new image, an old policy) cannot unseal the key, and the
// helper stops with the policy's denial.
func TestLocalModeWrongPCR0(t *testing.T) {
	bin, home := localHome(t, "test-chain")
	other := filepath.Join(t.TempDir(), "tmkms-nitro-enclave")
	data, err := os.ReadFile(filepath.Join(bin, "tmkms-nitro-enclave"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, append(data, 0), 0o755); err != nil { // one byte more: another PCR0
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "tmkms-nitro-helper"), "local", "start", "--home", home, "--enclave", other)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("local start succeeded with a modified enclave:\n%s", out)
	}
	for _, want := range []string{"refused its configuration", "access denied", "PCR0"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestLocalModeVersions is what a new user does: local init, a node of each
// version pointed at local start, and blocks signed by the enclave.
func TestLocalModeVersions(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: needs CometBFT node binaries")
	}
	bin := Programs(t)
	type run struct{ version, network string }
	var runs []run
	for _, v := range versions() {
		runs = append(runs, run{v, "unix"})
		if v == "v0.38.26" || v == "v1.0.1" {
			runs = append(runs, run{v, "tcp"})
		}
	}
	for _, r := range runs {
		version := r.version
		t.Run(version+"/"+r.network, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			node := nodeBinary(ctx, t, version)
			home := filepath.Join(t.TempDir(), "kms")
			laddr := "unix://" + filepath.Join(t.TempDir(), "pv.sock")
			if r.network == "tcp" { // SecretConnection from the enclave, through the host's bridge
				laddr = "tcp://127.0.0.1:" + strconv.Itoa(FreePort(t))
			}
			cfg := NodeConfig{Version: version, Laddr: laddr}
			if hasVoteExtensions(version) {
				cfg.VoteExtensionsHeight = 2
			}
			n := InitNode(t, node, cfg)
			pk := cmted25519.PubKey(localInit(t, bin, home, n.ChainID))
			n.SetValidator(t, pk)
			startLocal(t, bin, home, laddr)
			n.Start(t, node)
			if err := n.WaitHeight(ctx, 4); err != nil {
				t.Fatalf("%v\nnode:\n%s", err, tail(n.Logs(), 30))
			}
			if err := n.VerifyCommits(ctx, 1, 3, pk); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestImportKey: an existing priv_validator_key seed sealed by the enclave
// keeps its public key, and the sealed file records it.
func TestImportKey(t *testing.T) {
	bin, home := localHome(t, "test-chain")
	seed := bytes.Repeat([]byte{42}, 32)
	want := cmted25519.PrivKey(ed25519.NewKeyFromSeed(seed)).PubKey().Bytes()
	gk, _ := sealSeed(t, bin, home, seed)
	if !bytes.Equal(gk.PubKey, want) {
		t.Fatalf("imported key has public key %X, want %X", gk.PubKey, want)
	}
	sk, err := sealedkey.Parse(gk.SealedKey)
	if err != nil || !bytes.Equal(sk.PublicKey, want) || bytes.Contains(gk.SealedKey, seed) {
		t.Fatalf("sealed file: %+v %v", sk, err)
	}
	if len(gk.Attestation) == 0 {
		t.Fatal("no attestation for the imported key")
	}
}
