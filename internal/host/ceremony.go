package host

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/tmkms-nitro/tmkms-nitro/internal/config"
	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/sealedkey"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// AnchorFiles are the anchor's credentials as the operator holds them for
// the sealing ceremony. After it, only the sealed anchor file is needed on
// the host: delete these from it.
type AnchorFiles struct {
	Endpoints    []string // https://host:port of each etcd member
	CAFile       string   // PEM CA that verifies the members
	CertFile     string   // PEM client certificate, no CommonName when User is set
	KeyFile      string   // PEM client key
	User         string   // etcd user; "" if etcd auth is off
	PasswordFile string   // file whose first line is the user's password
	Prefix       string   // the signer's key prefix in etcd
}

// HA is the [ha] table of a signer whose anchor is sealed at sealedPath:
// the endpoints the helper relays to, and nothing it could write with.
// An empty instance is the host name.
func (a *AnchorFiles) HA(sealedPath, instance string) *config.HA {
	if instance == "" {
		instance, _ = os.Hostname()
	}
	return &config.HA{Endpoints: a.Endpoints, SealedAnchorPath: sealedPath, AnchorPort: enclaveproto.DefaultAnchorPort,
		KeyPrefix: a.Prefix, LeaseTTL: config.DefaultHALeaseTTL, Instance: instance}
}

func (a *AnchorFiles) request() (*enclaveproto.SealAnchor, error) {
	r := &enclaveproto.SealAnchor{Endpoints: a.Endpoints, Username: a.User, Prefix: a.Prefix}
	for _, f := range []struct {
		name, path string
		dst        *[]byte
	}{{"CA", a.CAFile, &r.CA}, {"client certificate", a.CertFile, &r.Cert}, {"client key", a.KeyFile, (*[]byte)(&r.Key)}} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			return nil, fmt.Errorf("anchor %s: %w", f.name, err)
		}
		*f.dst = b
	}
	if a.PasswordFile != "" {
		b, err := os.ReadFile(a.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("anchor password: %w", err)
		}
		pw, _, _ := strings.Cut(string(b), "\n")
		r.Password = enclaveproto.SecretBytes(strings.TrimRight(pw, "\r"))
	}
	return r, nil
}

// Ceremony seals, from inside the enclave, what a new signer needs: the
// anchor's credentials (when Anchor is set), then the consensus key bound
// to the chains and that anchor, then the identity key.
type Ceremony struct {
	Dial     func(context.Context) (net.Conn, error) // the enclave's config port
	Region   string
	KMSKeyID string
	Creds    enclaveproto.Credentials
	ChainIDs []string
	Nonce    []byte       // the operator's; nil: a random one
	Anchor   *AnchorFiles // nil: no anchor
	// AnchorFingerprint binds the consensus key to an anchor sealed by an
	// earlier ceremony, when Anchor is nil; "" for none.
	AnchorFingerprint string
	Import            []byte // the consensus seed to import; nil: KMS generates it
	KeyType           string // the consensus key's type (signer.KeyTypes); "": ed25519
	Force             bool   // replace existing sealed files
}

// Paths say where the sealed files go; no identity key is sealed when
// Identity is "" (a further consensus key for a signer that has one).
type Paths struct{ Consensus, Identity, Anchor string }

// Sealed is what a ceremony produced.
type Sealed struct {
	Consensus, Identity *enclaveproto.GeneratedKey
	Anchor              *enclaveproto.GeneratedKey // nil without an anchor
	Fingerprint         string                     // the anchor's, "" without
	Nonce               []byte                     // in every attestation document
	KMSKeyARN           string                     // as KMS named it, from the sealed consensus key
}

// Run performs the ceremony. It refuses to replace a sealed file unless
// Force, before asking the enclave for anything.
func (c *Ceremony) Run(ctx context.Context, p Paths) (*Sealed, error) {
	if !c.Force {
		for _, path := range []string{p.Consensus, p.Identity, p.Anchor} {
			if _, err := os.Stat(path); path != "" && err == nil {
				return nil, fmt.Errorf("%w at %s", ErrKeyExists, path)
			}
		}
	}
	out := &Sealed{Nonce: c.Nonce}
	if out.Nonce == nil {
		out.Nonce = make([]byte, 16)
		rand.Read(out.Nonce)
	}
	bind := enclaveproto.Binding{ChainIDs: c.ChainIDs, Nonce: out.Nonce, Anchor: c.AnchorFingerprint}
	out.Fingerprint = c.AnchorFingerprint
	if c.Anchor != nil {
		req, err := c.Anchor.request()
		if err != nil {
			return nil, err
		}
		req.Region, req.KMSKeyID, req.Credentials, req.Nonce = c.Region, c.KMSKeyID, c.Creds, out.Nonce
		if out.Anchor, err = c.seal(ctx, "anchor", req, p.Anchor); err != nil {
			return nil, err
		}
		sk, err := sealedkey.Parse(out.Anchor.SealedKey)
		if err != nil {
			return nil, err
		}
		out.Fingerprint, bind.Anchor = sk.Anchor, sk.Anchor
	}
	gen := &enclaveproto.GenerateKey{Region: c.Region, KMSKeyID: c.KMSKeyID, Credentials: c.Creds, Purpose: enclaveproto.PurposeConsensus, KeyType: c.KeyType, Binding: bind}
	var consensus enclaveproto.Message = gen
	if c.Import != nil {
		consensus = &enclaveproto.ImportKey{Region: c.Region, KMSKeyID: c.KMSKeyID, Credentials: c.Creds, Purpose: enclaveproto.PurposeConsensus, KeyType: c.KeyType, Seed: c.Import, Binding: bind}
	}
	var err error
	if out.Consensus, err = c.seal(ctx, "consensus key", consensus, p.Consensus); err != nil {
		return nil, err
	}
	sk, err := sealedkey.Parse(out.Consensus.SealedKey)
	if err != nil {
		return nil, err
	}
	// An enclave that predates key types seals ed25519 whatever was asked:
	// caught here, before anyone registers the key.
	if want := gen.Key(); sk.KeyType != want || out.Consensus.Key().Type != want {
		return nil, fmt.Errorf("asked the enclave for a %s key, it sealed a %s key (is the enclave older than this helper?)", want, sk.KeyType)
	}
	out.KMSKeyARN = sk.KMSKeyID
	if p.Identity == "" {
		return out, nil
	}
	identity := &enclaveproto.GenerateKey{Region: c.Region, KMSKeyID: c.KMSKeyID, Credentials: c.Creds, Purpose: enclaveproto.PurposeIdentity,
		Binding: enclaveproto.Binding{Nonce: out.Nonce}}
	if out.Identity, err = c.seal(ctx, "identity key", identity, p.Identity); err != nil {
		return nil, err
	}
	return out, nil
}

// CreateStateFiles gives each chain of cfg its state file, and the file's
// directory, keeping any that exists: where a new signer starts from.
func CreateStateFiles(cfg *config.Config) error {
	for _, ch := range cfg.Chains() {
		if err := os.MkdirAll(filepath.Dir(ch.StateFilePath), 0o700); err != nil {
			return err
		}
		st, err := signstate.Open(ch.StateFilePath, signstate.Options{AllowMissing: true})
		if err != nil {
			return fmt.Errorf("chain %s: %w", ch.ChainID, err)
		}
		st.Close()
	}
	return nil
}

func (c *Ceremony) seal(ctx context.Context, what string, req enclaveproto.Message, path string) (*enclaveproto.GeneratedKey, error) {
	gk, err := SealKey(ctx, c.Dial, req)
	if err != nil {
		return nil, fmt.Errorf("the enclave could not seal the %s: %w", what, err)
	}
	if err := WriteSecret(path, gk.SealedKey, c.Force); err != nil {
		return nil, err
	}
	return gk, nil
}
