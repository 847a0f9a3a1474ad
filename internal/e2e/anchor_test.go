package e2e

// The hostile-host suite: each test plays root on the signer's host (its
// files, tmkms.toml, the vsock ports, the instance role's credentials and
// the etcd certificate it may hold) against the real enclave program, the
// local KMS and a real etcd cluster with auth on, and checks that with an
// anchor all it gets is a signer that stops: no two different messages at
// one height/round/step across all enclaves, no key material on the host,
// and an error that names what was refused.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	cmtprivval "github.com/cometbft/cometbft/privval"

	"github.com/tmkms-nitro/tmkms-nitro/internal/config"
	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/ha/etcdlocal"
	"github.com/tmkms-nitro/tmkms-nitro/internal/host"
	"github.com/tmkms-nitro/tmkms-nitro/internal/localmode"
	"github.com/tmkms-nitro/tmkms-nitro/internal/sealedkey"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// anchoredSet is one validator's signer set with an anchor: a real etcd
// cluster with auth on (a signer user whose role covers the prefix only)
// and a first local home sealed against it by `local init --ha-*`.
type anchoredSet struct {
	bin, dir, chain string
	etcd            *etcdlocal.Cluster
	auth            etcdlocal.Auth
	pk              cmted25519.PubKey
	first           string
	d               *faultDriver
}

func newAnchoredSet(t *testing.T, chain string, members int) *anchoredSet {
	t.Helper()
	s := &anchoredSet{bin: Programs(t), dir: t.TempDir(), chain: chain, etcd: etcdlocal.StartT(t, members)}
	var err error
	if s.auth, err = s.etcd.EnableAuth(config.DefaultHAKeyPrefix); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(s.dir, "etcd-password")
	if err := os.WriteFile(pw, []byte(s.auth.SignerPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.first = filepath.Join(s.dir, "signer-0")
	out := s.helper(t, "local", "init", "--home", s.first, "--chain-id", chain,
		"--ha-endpoints", strings.Join(s.etcd.Endpoints, ","), "--ha-ca", s.etcd.CA, "--ha-cert", s.etcd.AnchorCert, "--ha-key", s.etcd.AnchorKey,
		"--ha-user", s.auth.Signer, "--ha-password-file", pw, "--instance", "signer-0")
	if !strings.Contains(out, "anchor: ") || !strings.Contains(out, "--expect-anchor ") {
		t.Fatalf("local init did not report the anchor:\n%s", out)
	}
	s.pk = cmted25519.PubKey(readPubKey(t, s.first))
	s.d = &faultDriver{chain: chain, pk: s.pk, stats: &faultStats{}, released: map[signstate.HRS][]byte{}}
	t.Cleanup(func() {
		for _, v := range s.d.stats.violations {
			t.Error(v)
		}
	})
	return s
}

func (s *anchoredSet) helper(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(s.bin, "tmkms-nitro-helper"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("tmkms-nitro-helper %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// replicate adds an instance as a second EC2 host would be set up.
func (s *anchoredSet) replicate(t *testing.T, name string) string {
	t.Helper()
	home := filepath.Join(s.dir, name)
	s.helper(t, "local", "replicate", "--from", s.first, "--home", home, "--instance", name)
	return home
}

func readPubKey(t *testing.T, home string) []byte {
	t.Helper()
	var pk struct{ Value string }
	data, err := os.ReadFile(filepath.Join(home, "pubkey.json"))
	if err == nil {
		err = json.Unmarshal(data, &pk)
	}
	pub, _ := base64.StdEncoding.DecodeString(pk.Value)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		t.Fatalf("pubkey.json: %v", err)
	}
	return pub
}

// instance is a running `local start` of a home with its node side.
type instance struct {
	home   string
	proc   *localSigner
	client *cmtprivval.SignerClient
	laddr  string
}

// start runs home's helper and enclave for a node side of its own; ok is
// false if the enclave did not connect to the node within wait.
func (s *anchoredSet) start(t *testing.T, home string, wait time.Duration) (*instance, bool) {
	t.Helper()
	c, sock := nodeSide(t, s.chain)
	in := &instance{home: home, client: c, laddr: "unix://" + sock}
	in.proc = startLocal(t, s.bin, home, in.laddr)
	return in, c.WaitForConnection(wait) == nil
}

func (s *anchoredSet) mustStart(t *testing.T, home string) *instance {
	t.Helper()
	in, ok := s.start(t, home, 60*time.Second)
	if !ok {
		t.Fatalf("%s did not start signing:\n%s", home, in.proc.logs)
	}
	return in
}

// kill SIGKILLs the instance's helper and enclave.
func (in *instance) kill() {
	in.proc.stop(syscall.SIGKILL)
	if pid, ok := localmode.FindEnclavePID(in.home); ok {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for range 50 {
		if _, ok := localmode.FindEnclavePID(in.home); !ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (in *instance) statePath() string {
	return filepath.Join(in.home, "state", "priv_validator_state.json")
}

// sign asks in's enclave for one position; alt 0 is the block, others
// conflict with it. Every answer is checked against all released before.
func (s *anchoredSet) sign(in *instance, h int64, step signstate.Step, alt byte) error {
	return s.d.signOn(in.client, in.statePath(), h, step, alt, time.Now().UTC())
}

// signHeights signs the block at every step of heights from..to on in.
func (s *anchoredSet) signHeights(t *testing.T, in *instance, from, to int64) {
	t.Helper()
	for h := from; h <= to; h++ {
		for _, step := range []signstate.Step{signstate.StepPropose, signstate.StepPrevote, signstate.StepPrecommit} {
			deadline := time.Now().Add(30 * time.Second)
			for err := s.sign(in, h, step, 0); err != nil; err = s.sign(in, h, step, 0) {
				if time.Now().After(deadline) {
					t.Fatalf("%s did not sign %d/%s: %v\n%s", in.home, h, step, err, tail(in.proc.logs.String(), 30))
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
}

// refused asserts that in does not sign a conflicting block at any step of
// heights from..to (d.sign records a double sign if it does).
func (s *anchoredSet) refused(t *testing.T, in *instance, from, to int64) {
	t.Helper()
	for h := from; h <= to; h++ {
		for _, step := range []signstate.Step{signstate.StepPropose, signstate.StepPrevote, signstate.StepPrecommit} {
			if err := s.sign(in, h, step, 0xB); err == nil {
				t.Errorf("%s signed a conflicting block at %d/%s", in.home, h, step)
			}
		}
	}
}

// replaceFile writes data at path as root on the host would.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// noSecretsOnHost fails if a file under the set's directory other than the
// operator's own ceremony inputs, or a log, holds the anchor's password or
// client key.
func (s *anchoredSet) noSecretsOnHost(t *testing.T, logs ...string) {
	t.Helper()
	key := readFile(t, s.etcd.AnchorKey)
	secrets := map[string][]byte{"etcd password": []byte(s.auth.SignerPassword), "etcd client key": pemBody(key)}
	filepath.WalkDir(s.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() || filepath.Base(p) == "etcd-password" {
			return nil
		}
		b, _ := os.ReadFile(p)
		for what, v := range secrets {
			if bytes.Contains(b, v) {
				t.Errorf("%s is in plaintext in %s", what, p)
			}
		}
		return nil
	})
	for _, l := range logs {
		for what, v := range secrets {
			if strings.Contains(l, string(v)) {
				t.Errorf("%s is in a log", what)
			}
		}
	}
}

func pemBody(p []byte) []byte {
	lines := strings.Split(string(p), "\n")
	if len(lines) < 3 {
		return p
	}
	return []byte(lines[1])
}

// TestAnchorRollback: with an anchor, a host that restores an old state
// file before restarting its enclave, starts a second enclave of the same
// key with an empty state, drops [ha] from tmkms.toml, swaps in another
// sealed anchor or configures another chain gets no conflicting signature.
// Without an anchor the same rollback does get one: the documented limit,
// and proof that this test sees a double sign when there is one.
func TestAnchorRollback(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	s := newAnchoredSet(t, "anchor-chain", 1)
	empty := readFile(t, filepath.Join(s.first, "state", "priv_validator_state.json"))
	a := s.mustStart(t, s.first)
	s.signHeights(t, a, 1, 2)
	old := readFile(t, a.statePath())
	s.signHeights(t, a, 3, 5)

	t.Run("rolled-back state across a restart", func(t *testing.T) {
		a.kill()
		replaceFile(t, a.statePath(), old)
		a = s.mustStart(t, s.first)
		s.refused(t, a, 3, 5)
		waitFor(t, 10*time.Second, func() bool {
			return strings.Contains(a.proc.logs.String(), "the anchor holds a later decision than the host's state")
		}, "the enclave did not say it started from the anchor:\n%s", a.proc.logs)
		s.signHeights(t, a, 6, 6)
	})

	t.Run("second enclave with an empty state", func(t *testing.T) {
		home := s.replicate(t, "signer-1")
		replaceFile(t, filepath.Join(home, "state", "priv_validator_state.json"), empty)
		b := s.mustStart(t, home)
		s.refused(t, b, 1, 6)
		s.signHeights(t, b, 7, 7)
		s.refused(t, a, 7, 7)
		b.kill()
	})

	t.Run("dropped [ha]", func(t *testing.T) {
		home := s.replicate(t, "no-ha")
		if err := config.Edit(filepath.Join(home, "tmkms.toml"), func(c *config.Config) { c.HA = nil }); err != nil {
			t.Fatal(err)
		}
		in, ok := s.start(t, home, 5*time.Second)
		if ok {
			t.Fatal("an enclave configured without its anchor connected to the node")
		}
		waitFor(t, 30*time.Second, func() bool {
			return strings.Contains(in.proc.logs.String(), "the consensus key is bound to anchor") &&
				strings.Contains(in.proc.logs.String(), "the configuration has no sealed anchor")
		}, "no error naming the missing anchor:\n%s", in.proc.logs)
	})

	t.Run("another chain", func(t *testing.T) {
		home := s.replicate(t, "other-chain")
		if err := config.Edit(filepath.Join(home, "tmkms.toml"), func(c *config.Config) { c.ChainID = "other-chain" }); err != nil {
			t.Fatal(err)
		}
		replaceFile(t, filepath.Join(home, "state", "priv_validator_state.json"), empty)
		in, ok := s.start(t, home, 5*time.Second)
		if ok {
			t.Fatal("an enclave configured for another chain connected to the node")
		}
		waitFor(t, 30*time.Second, func() bool {
			return strings.Contains(in.proc.logs.String(), `the consensus key is sealed for chains ["anchor-chain"] only, not "other-chain"`)
		}, "no error naming the chain:\n%s", in.proc.logs)
	})

	t.Run("another anchor", func(t *testing.T) {
		home := s.replicate(t, "other-anchor")
		// An anchor sealed by the same enclave image and KMS key, but for
		// another prefix: a host that had the etcd credentials could make
		// one, pointing at records it controls.
		files := &host.AnchorFiles{Endpoints: s.etcd.Endpoints, CAFile: s.etcd.CA, CertFile: s.etcd.AnchorCert, KeyFile: s.etcd.AnchorKey,
			User: s.auth.Signer, PasswordFile: filepath.Join(s.dir, "etcd-password"), Prefix: "/elsewhere/"}
		gk := sealAnchor(t, s.bin, home, files)
		replaceFile(t, filepath.Join(home, "secrets", "anchor.sealed"), gk.SealedKey)
		in, ok := s.start(t, home, 5*time.Second)
		if ok {
			t.Fatal("an enclave configured with another anchor connected to the node")
		}
		waitFor(t, 30*time.Second, func() bool {
			l := in.proc.logs.String()
			return strings.Contains(l, "the sealed anchor is") && strings.Contains(l, "but the consensus key is bound to anchor")
		}, "no error naming the other anchor:\n%s", in.proc.logs)
	})

	s.noSecretsOnHost(t, a.proc.logs.String())

	// (A short name: unix socket paths under t.TempDir() must fit.)
	t.Run("unanchored", func(t *testing.T) {
		st := startLocalStack(t, "no-anchor-chain", nil)
		pk := cmted25519.PubKey(st.pub)
		d := &faultDriver{chain: "no-anchor-chain", pk: pk, stats: &faultStats{}, released: map[signstate.HRS][]byte{}}
		plain := &instance{home: st.home, proc: st.helper, client: st.client, laddr: st.laddr}
		u := &anchoredSet{bin: st.bin, chain: "no-anchor-chain", d: d}
		u.signHeights(t, plain, 1, 1)
		before := readFile(t, plain.statePath())
		u.signHeights(t, plain, 2, 2)
		plain.kill()
		replaceFile(t, plain.statePath(), before)
		plain.proc = startLocal(t, st.bin, st.home, st.laddr)
		err := errors.New("not asked")
		var rse *cmtprivval.RemoteSignerError
		for end := time.Now().Add(60 * time.Second); err != nil && !errors.As(err, &rse) && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			err = u.sign(plain, 2, signstate.StepPrevote, 0xB) // until the restarted stack answers
		}
		if err != nil {
			t.Fatalf("expected the unanchored enclave to sign after a rollback (the documented limit): %v", err)
		}
		if len(d.stats.violations) != 1 || !strings.Contains(d.stats.violations[0], "DOUBLE SIGN") {
			t.Fatalf("the rollback's double sign was not detected: %v", d.stats.violations)
		}
	})
}

// sealAnchor has home's enclave seal files as an anchor, with home's KMS.
func sealAnchor(t *testing.T, bin, home string, files *host.AnchorFiles) *enclaveproto.GeneratedKey {
	t.Helper()
	var sealed *host.Sealed
	withEnclave(t, bin, home, func(ctx context.Context, cfg *config.Config, kms *localmode.KMS, dial func(context.Context) (net.Conn, error)) (err error) {
		c := &host.Ceremony{Dial: dial, Region: cfg.AWSRegion, KMSKeyID: cfg.KMSKeyID, Creds: host.ProtoCredentials(kms.Credentials().AWS()),
			ChainIDs: []string{"x"}, Anchor: files}
		dir := t.TempDir()
		sealed, err = c.Run(ctx, host.Paths{Consensus: filepath.Join(dir, "c"), Identity: filepath.Join(dir, "i"), Anchor: filepath.Join(dir, "a")})
		return err
	})
	return sealed.Anchor
}

// TestAnchorKeyProvenance: the host, with the instance role's credentials,
// cannot plant a key (kms:Encrypt, directly or through the enclave's
// import) nor read one (Decrypt or GenerateDataKey without an attestation).
// A host that names a KMS key it controls at init can read the new key,
// and verify-attestation --expect-kms-key catches it before the key is
// registered.
func TestAnchorKeyProvenance(t *testing.T) {
	bin, home := localHome(t, "provenance-chain")
	cfg, err := config.Load(filepath.Join(home, "tmkms.toml"))
	if err != nil {
		t.Fatal(err)
	}
	sk, err := sealedkey.Parse(readFile(t, cfg.SealedConsensusKeyPath))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kms, err := localmode.StartKMS(home, nil)
	if err != nil {
		t.Fatal(err)
	}
	role := kms.Client(kms.Credentials().AWS())
	seed := bytes.Repeat([]byte{7}, 32)
	ec := cmted25519.PrivKey(ed25519.NewKeyFromSeed(seed)).PubKey().Bytes()
	planted := &sealedkey.Key{Version: 2, Purpose: sealedkey.Consensus, KeyType: "ed25519", PublicKey: ec, Origin: sealedkey.Generated, ChainIDs: sk.ChainIDs}

	denied := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "AccessDenied") {
			t.Errorf("%s with the instance role: want AccessDenied, got %v", what, err)
		}
	}
	_, err = role.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(cfg.KMSKeyID), Plaintext: seed, EncryptionContext: planted.EncryptionContext()})
	denied("Encrypt (planting a seed the host chose)", err)
	_, err = role.Decrypt(ctx, &awskms.DecryptInput{KeyId: aws.String(cfg.KMSKeyID), CiphertextBlob: sk.Ciphertext, EncryptionContext: sk.EncryptionContext()})
	denied("Decrypt of the sealed key without an attestation", err)
	_, err = role.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: aws.String(cfg.KMSKeyID), NumberOfBytes: aws.Int32(32), EncryptionContext: sk.EncryptionContext()})
	denied("GenerateDataKey without an attestation", err)

	// Through the enclave: an import with the role's credentials.
	enc, err := localmode.StartEnclave(ctx, filepath.Join(bin, "tmkms-nitro-enclave"), home, nopLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(ctx context.Context) (net.Conn, error) { return localmode.DialConfig(ctx, home) }
	_, err = host.SealKey(ctx, dial, &enclaveproto.ImportKey{Region: cfg.AWSRegion, KMSKeyID: cfg.KMSKeyID,
		Credentials: host.ProtoCredentials(kms.Credentials().AWS()), Purpose: enclaveproto.PurposeConsensus, Seed: seed})
	denied("ImportKey through the enclave", err)

	// Theft at init: the host names a key whose policy it wrote.
	admin, err := kms.Admin()
	if err != nil {
		t.Fatal(err)
	}
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":[%q,%q]},"Action":"kms:*","Resource":"*"}]}`,
		kms.Credentials().RoleARN, kms.AdminCredentials().Principal)
	out, err := admin.CreateKey(ctx, &awskms.CreateKeyInput{Policy: aws.String(policy)})
	if err != nil {
		t.Fatal(err)
	}
	theirs := aws.ToString(out.KeyMetadata.Arn)
	nonce := []byte("operator's nonce")
	c := &host.Ceremony{Dial: dial, Region: cfg.AWSRegion, KMSKeyID: theirs, Creds: host.ProtoCredentials(kms.Credentials().AWS()),
		ChainIDs: []string{"provenance-chain"}, Nonce: nonce}
	dir := t.TempDir()
	sealed, err := c.Run(ctx, host.Paths{Consensus: filepath.Join(dir, "secret.key"), Identity: filepath.Join(dir, "id.key")})
	if err != nil {
		t.Fatal(err)
	}
	stolen, err := sealedkey.Parse(sealed.Consensus.SealedKey)
	if err != nil {
		t.Fatal(err)
	}
	dk, err := role.Decrypt(ctx, &awskms.DecryptInput{KeyId: aws.String(theirs), CiphertextBlob: stolen.Ciphertext, EncryptionContext: stolen.EncryptionContext()})
	if err != nil {
		t.Fatalf("the host's own key should let it decrypt (the attack is real): %v", err)
	}
	if got := cmted25519.PrivKey(ed25519.NewKeyFromSeed(dk.Plaintext)).PubKey().Bytes(); !bytes.Equal(got, sealed.Consensus.PubKey) {
		t.Fatal("the decrypted seed is not the attested key's")
	}
	cancel()
	enc.Wait()
	kms.Close()

	doc := filepath.Join(dir, "attestation.b64")
	replaceFile(t, doc, []byte(base64.StdEncoding.EncodeToString(sealed.Consensus.Attestation)))
	verify := func(extra ...string) (string, error) {
		args := append([]string{"verify-attestation", "--root", localmode.NSMRoot(home)}, extra...)
		out, err := exec.Command(filepath.Join(bin, "tmkms-nitro-helper"), append(args, doc)...).CombinedOutput()
		return string(out), err
	}
	if out, err := verify("--expect-kms-key", theirs, "--expect-nonce", fmt.Sprintf("%x", nonce)); err != nil {
		t.Fatalf("the document should verify against the key it names: %v\n%s", err, out)
	}
	out2, err := verify("--expect-kms-key", cfg.KMSKeyID, "--expect-nonce", fmt.Sprintf("%x", nonce), "--expect-origin", "generated")
	if err == nil || !strings.Contains(out2, `KMS key mismatch: user_data.kms_key_id is "`+theirs+`"`) {
		t.Fatalf("verify-attestation did not catch the host's KMS key: %v\n%s", err, out2)
	}
	out3, err := verify("--expect-nonce", "00")
	if err == nil || !strings.Contains(out3, "nonce mismatch") {
		t.Fatalf("verify-attestation did not catch a replayed document: %v\n%s", err, out3)
	}
}

// TestAnchorHostileNetwork: the host controls the connections the enclave
// makes to etcd and holds an etcd client certificate. Writing or deleting
// the record with it is refused by etcd; a man in the middle with a CA the
// host made, and a replay of a recorded etcd session, get nothing signed
// and an error naming TLS; the anchor losing quorum gets a prompt code 5,
// not a signature, and signing resumes by itself; a flood of connections
// to the enclave does not stop it.
func TestAnchorHostileNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	s := newAnchoredSet(t, "network-chain", 3)
	a := s.mustStart(t, s.first)
	s.signHeights(t, a, 1, 2)
	record := config.DefaultHAKeyPrefix + s.chain + "/decision"

	t.Run("the host's etcd certificate cannot touch the record", func(t *testing.T) {
		cli, err := s.etcd.Client("", "") // the CN certificate a host may hold
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := cli.Delete(ctx, record); err == nil {
			t.Error("the host deleted the anchor's record")
		}
		if _, err := cli.Put(ctx, record, "old"); err == nil {
			t.Error("the host rewrote the anchor's record")
		}
		root, err := s.etcd.Client(s.auth.Root, s.auth.RootPassword)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		if r, err := root.Get(ctx, record); err != nil || len(r.Kvs) != 1 || bytes.Equal(r.Kvs[0].Value, []byte("old")) {
			t.Fatalf("the record is not intact: %v %v", r, err)
		}
	})

	t.Run("quorum lost: code 5, then signing resumes", func(t *testing.T) {
		s.etcd.Stop(0)
		s.etcd.Stop(1)
		start := time.Now()
		err := s.sign(a, 3, signstate.StepPropose, 0)
		var rse *cmtprivval.RemoteSignerError
		if !errors.As(err, &rse) || rse.Code != 5 {
			t.Errorf("without quorum: want code 5, got %v", err)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("the refusal took %s", d)
		}
		if err := s.etcd.RestartStopped(); err != nil {
			t.Fatal(err)
		}
		s.signHeights(t, a, 3, 3)
	})

	t.Run("man in the middle with the host's CA", func(t *testing.T) {
		mitm := newTLSImpostor(t, len(s.etcd.Endpoints))
		a.kill()
		home := a.home
		setEndpoints(t, home, mitm.addrs)
		a, _ = s.start(t, home, 30*time.Second)
		if err := s.sign(a, 4, signstate.StepPropose, 0); err == nil {
			t.Fatal("signed through an impostor etcd")
		}
		waitFor(t, 20*time.Second, func() bool { return strings.Contains(a.proc.logs.String(), "certificate signed by unknown authority") },
			"no certificate error in the logs:\n%s", a.proc.logs)
		if n := mitm.n.Load(); n != 0 {
			t.Errorf("the impostor read %d requests", n)
		}
		a.kill()
		setEndpoints(t, home, nil)
		a = s.mustStart(t, home)
		s.signHeights(t, a, 4, 4)
	})

	t.Run("replayed etcd session", func(t *testing.T) {
		rp := newReplayer(t, len(s.etcd.Endpoints), strings.TrimPrefix(s.etcd.Endpoints[0], "https://"))
		a.kill()
		home := a.home
		setEndpoints(t, home, rp.addrs)
		a = s.mustStart(t, home)
		s.signHeights(t, a, 5, 5) // recorded: the first session passes through
		rp.replay()
		a.kill()
		a, _ = s.start(t, home, 30*time.Second)
		if err := s.sign(a, 6, signstate.StepPropose, 0); err == nil {
			t.Fatal("signed on a replayed etcd session")
		}
		if err := s.sign(a, 5, signstate.StepPropose, 0xB); err == nil {
			t.Fatal("signed a conflicting block on a replayed etcd session")
		}
		waitFor(t, 20*time.Second, func() bool {
			l := a.proc.logs.String()
			return strings.Contains(l, "the anchor could not be read") && strings.Contains(l, "tls: ")
		}, "no TLS error in the logs:\n%s", a.proc.logs)
		a.kill()
		setEndpoints(t, home, nil)
		a = s.mustStart(t, home)
		s.signHeights(t, a, 6, 6)
	})

	t.Run("flood of connections to the enclave", func(t *testing.T) {
		a.kill() // its node side ended with the last subtest
		a = s.mustStart(t, a.home)
		pid, _ := localmode.FindEnclavePID(a.home)
		var conns []net.Conn
		for range 300 {
			c, err := net.Dial("unix", filepath.Join(a.home, "sockets", "enclave", "port-5050.sock"))
			if err != nil {
				continue
			}
			c.Write([]byte{enclaveproto.Magic, enclaveproto.Version})
			conns = append(conns, c)
		}
		s.signHeights(t, a, 7, 8)
		for _, c := range conns {
			c.Close()
		}
		if now, _ := localmode.FindEnclavePID(a.home); now != pid {
			t.Errorf("the enclave restarted under the flood (pid %d, now %d)", pid, now)
		}
	})
	s.noSecretsOnHost(t, a.proc.logs.String())
}

// setEndpoints points the [ha] endpoints of home at addrs (where the
// host's relays now go), or back at the originals when addrs is nil.
func setEndpoints(t *testing.T, home string, addrs []string) {
	t.Helper()
	path := filepath.Join(home, "tmkms.toml")
	orig := path + ".orig"
	if addrs == nil {
		replaceFile(t, path, readFile(t, orig))
		return
	}
	if _, err := os.Stat(orig); err != nil {
		replaceFile(t, orig, readFile(t, path))
	}
	var eps []string
	for _, a := range addrs {
		eps = append(eps, "https://"+a)
	}
	if err := config.Edit(path, func(c *config.Config) { c.HA.Endpoints = eps }); err != nil {
		t.Fatal(err)
	}
}

// listeners opens n loopback listeners and serves each connection with
// serve; when the test ends it closes them and every connection, and
// waits for serve to return. It returns their addresses.
func listeners(t *testing.T, n int, serve func(net.Conn)) []string {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		open  []io.Closer
		addrs []string
	)
	track := func(c io.Closer) {
		mu.Lock()
		defer mu.Unlock()
		open = append(open, c)
	}
	t.Cleanup(func() {
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		track(ln)
		addrs = append(addrs, ln.Addr().String())
		wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				track(c)
				wg.Go(func() {
					defer c.Close()
					serve(c)
				})
			}
		})
	}
	return addrs
}

// tlsImpostor is an etcd cluster as a host would fake one: TLS with a
// certificate from a CA the host made, answering any request.
type tlsImpostor struct {
	addrs []string
	n     atomic.Int64
}

func newTLSImpostor(t *testing.T, members int) *tlsImpostor {
	t.Helper()
	dir := t.TempDir()
	fake, err := etcdlocal.Start(dir, 1) // its CA is not the anchor's
	if err != nil {
		t.Fatal(err)
	}
	fake.Close()
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	m := &tlsImpostor{}
	m.addrs = listeners(t, members, func(raw net.Conn) {
		c := tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{cert}})
		c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4096)
		if n, err := c.Read(buf); err == nil && n > 0 {
			m.n.Add(1)
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"))
		}
	})
	return m
}

// replayer relays to one etcd member and records what the member sent on
// the first connection; after replay() it answers every new connection
// with that recording instead.
type replayer struct {
	addrs     []string
	mu        sync.Mutex
	recording []byte
	recorded  bool // the first connection has been taken
	replaying bool
}

func newReplayer(t *testing.T, members int, target string) *replayer {
	t.Helper()
	r := &replayer{}
	r.addrs = listeners(t, members, func(c net.Conn) {
		r.mu.Lock()
		replaying, rec, record := r.replaying, r.recording, !r.recorded
		r.recorded = true
		r.mu.Unlock()
		if replaying {
			c.Write(rec)
			io.Copy(io.Discard, c) // until the enclave gives up
			return
		}
		up, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer up.Close()
		go func() { io.Copy(up, c); up.Close() }()
		var w io.Writer = c
		if record {
			w = io.MultiWriter(c, recorder{r})
		}
		io.Copy(w, up)
	})
	return r
}

type recorder struct{ r *replayer }

func (w recorder) Write(p []byte) (int, error) {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	w.r.recording = append(w.r.recording, p...)
	return len(p), nil
}

func (r *replayer) replay() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.replaying = true
}

// TestAnchorFaults is the rollback and dropped-[ha] attacks at scale: three
// anchored instances serve one validator, and every position is raced
// across them (the block to one, a conflicting block to another, a
// timestamp-only repeat to the third), while a hostile host kills
// instances and restarts them on an old state file, an empty one, or with
// [ha] removed from tmkms.toml, and etcd members die. No two different
// messages may be signed at one height/round/step.
//
// TMKMS_HOSTILE_SECONDS (default 15) sets the length: a long run is
// TMKMS_HOSTILE_SECONDS=1800 go test -run TestAnchorFaults -timeout 1h -v ./internal/e2e/
func TestAnchorFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	duration := time.Duration(envInt("TMKMS_HOSTILE_SECONDS", 15)) * time.Second
	s := newAnchoredSet(t, "hostile-chain", 3)
	s.d.hostHostile = true
	empty := readFile(t, filepath.Join(s.first, "state", "priv_validator_state.json"))
	insts := []*haInstance{{name: "signer-0", home: s.first, bin: s.bin}}
	for _, name := range []string{"signer-1", "signer-2"} {
		insts = append(insts, &haInstance{name: name, home: s.replicate(t, name), bin: s.bin})
	}
	clients, laddrs := startEach(t, s.chain, insts)

	var rollbacks, emptied, dropped, etcdKills int
	snapshots := map[int][][]byte{}
	heights := injectFaults(duration, 400*time.Millisecond, 1200*time.Millisecond,
		func(h int64) bool { return s.d.haHeight(clients, insts, h) },
		func() bool {
			i := rand.IntN(len(insts))
			in := insts[i]
			state := filepath.Join(in.home, "state", "priv_validator_state.json")
			if b, err := os.ReadFile(state); err == nil {
				snapshots[i] = append(snapshots[i], b)
			}
			s.d.stats.count(&s.d.stats.kills)
			switch rand.IntN(5) {
			case 0: // an old state file
				in.kill()
				if old := snapshots[i]; len(old) > 0 {
					os.WriteFile(state, old[rand.IntN(len(old))], 0o600)
					rollbacks++
				}
			case 1: // an empty one, as a second enclave would start
				in.kill()
				os.WriteFile(state, empty, 0o600)
				emptied++
			case 2: // [ha] dropped for one start; it must not sign at all
				in.kill()
				path := filepath.Join(in.home, "tmkms.toml")
				orig, _ := os.ReadFile(path)
				config.Edit(path, func(c *config.Config) { c.HA = nil })
				in.start(t, laddrs[i])
				time.Sleep(time.Duration(500+rand.IntN(1000)) * time.Millisecond)
				in.kill()
				os.WriteFile(path, orig, 0o600)
				dropped++
			case 3: // an etcd member dies for a while
				etcdKills++
				return etcdOutage(t, s.etcd, 1)
			case 4:
				in.kill()
			}
			time.Sleep(time.Duration(rand.IntN(500)) * time.Millisecond)
			in.start(t, laddrs[i])
			return true
		})
	st := s.d.stats
	t.Logf("hostile host: %d heights, %d instance kills (%d restarted on an old state file, %d on an empty one, %d with [ha] dropped), %d etcd member kills, %d signatures, %d refusals (of %d conflicting requests), %d repeats answered identically, %d unavailable answers, violations = %d",
		heights, st.kills, rollbacks, emptied, dropped, etcdKills, st.signatures, st.refusals, st.conflictsSent, st.duplicatesOK, st.unavailable, len(st.violations))
	if rollbacks+emptied+dropped == 0 {
		t.Error("the run injected no attack")
	}
	if signed := checkReleased(t, insts); signed == 0 {
		t.Error("nothing was signed")
	}
}
