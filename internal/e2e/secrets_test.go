package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	cmtproto "github.com/cometbft/cometbft/api/cometbft/types/v1"
	"github.com/cometbft/cometbft/types"

	"github.com/tmkms-nitro/tmkms-nitro/internal/config"
	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/host"
	"github.com/tmkms-nitro/tmkms-nitro/internal/localkms"
	"github.com/tmkms-nitro/tmkms-nitro/internal/localmode"
)

// TestNoSecretsInLogs runs the local stack at debug level, with a consensus
// key whose seed the test knows, through key import, configuration and
// signing, and searches every log (the helper's, which carries the
// enclave's records, and the enclave's console) for the key in any common
// encoding and for the AWS secret key and session token.
func TestNoSecretsInLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	chain := "secret-chain"
	seed := bytes.Repeat([]byte{0x5e}, 32)
	t.Setenv("TMKMS_LOG_LEVEL", "debug")
	st := startLocalStack(t, chain, func(home string) { importSeed(t, Programs(t), home, seed) })
	home, client, ls := st.home, st.client, st.helper
	for h := int64(1); h <= 5; h++ {
		v := &cmtproto.Vote{Type: types.PrecommitType, Height: h, BlockID: faultBlock(h, 0), Timestamp: time.Now().UTC(), Extension: []byte("x")}
		if err := client.SignVote(chain, v, true); err != nil {
			t.Fatal(err)
		}
		if !ed25519.Verify(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey), types.VoteSignBytes(chain, v), v.Signature) {
			t.Fatal("not signed with the imported key")
		}
	}
	// The enclave's records reach the helper asynchronously.
	waitFor(t, 10*time.Second, func() bool { return strings.Count(ls.logs.String(), "msg=signed") >= 5 }, "the enclave's signature records did not reach the helper's log")
	ls.stop(syscall.SIGTERM)

	creds, err := os.ReadFile(filepath.Join(home, "kms", localkms.CredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(home, "tmkms.toml"))
	if err != nil {
		t.Fatal(err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	secrets := map[string]string{
		"seed (hex)":          hex.EncodeToString(seed),
		"seed (HEX)":          strings.ToUpper(hex.EncodeToString(seed)),
		"seed (base64)":       base64.StdEncoding.EncodeToString(seed),
		"private key":         base64.StdEncoding.EncodeToString(priv),
		"private key (hex)":   hex.EncodeToString(priv),
		"AWS secret key":      cfg.Credentials.SecretKey,
		"AWS session token":   cfg.Credentials.SessionToken,
		"session token start": cfg.Credentials.SessionToken[:16],
	}
	if !bytes.Contains(creds, []byte(cfg.Credentials.SecretKey)) {
		t.Fatal("test setup: the credentials file does not hold the secret it should")
	}
	console, _ := os.ReadFile(filepath.Join(home, "enclave.log"))
	logs := map[string]string{"helper": ls.logs.String(), "enclave console": string(console)}
	for where, text := range logs {
		for what, secret := range secrets {
			if secret != "" && strings.Contains(text, secret) {
				t.Errorf("%s found in the %s log", what, where)
			}
		}
	}
}

// importSeed replaces home's consensus key with one made from seed, sealed
// by the enclave, as `import` does.
func importSeed(t *testing.T, bin, home string, seed []byte) {
	t.Helper()
	gk, cfg := sealSeed(t, bin, home, seed)
	if err := host.WriteSecret(cfg.SealedConsensusKeyPath, gk.SealedKey, true); err != nil {
		t.Fatal(err)
	}
}

// sealSeed has home's enclave (started for the purpose, with the local
// KMS) seal seed as a consensus key, and returns the result and home's
// configuration.
func sealSeed(t *testing.T, bin, home string, seed []byte) (*enclaveproto.GeneratedKey, *config.Config) {
	t.Helper()
	var gk *enclaveproto.GeneratedKey
	cfg := withEnclave(t, bin, home, func(ctx context.Context, cfg *config.Config, kms *localmode.KMS, dial func(context.Context) (net.Conn, error)) (err error) {
		gk, err = host.SealKey(ctx, dial, &enclaveproto.ImportKey{Region: cfg.AWSRegion, KMSKeyID: cfg.KMSKeyID,
			Credentials: host.ProtoCredentials(kms.AdminCredentials().AWS()), Purpose: enclaveproto.PurposeConsensus, Seed: seed})
		return err
	})
	return gk, cfg
}

// withEnclave runs home's local KMS and enclave for as long as do runs,
// and returns home's configuration.
func withEnclave(t *testing.T, bin, home string, do func(ctx context.Context, cfg *config.Config, kms *localmode.KMS, dial func(context.Context) (net.Conn, error)) error) *config.Config {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kms, err := localmode.StartKMS(home, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer kms.Close()
	enc, err := localmode.StartEnclave(ctx, filepath.Join(bin, "tmkms-nitro-enclave"), home, nopLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); enc.Wait() }()
	cfg, err := config.Load(filepath.Join(home, "tmkms.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := do(ctx, cfg, kms, func(ctx context.Context) (net.Conn, error) { return localmode.DialConfig(ctx, home) }); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func nopLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
