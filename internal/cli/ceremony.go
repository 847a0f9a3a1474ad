package cli

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/tmkms-nitro/tmkms-nitro/internal/atomicfile"
	"github.com/tmkms-nitro/tmkms-nitro/internal/config"
	"github.com/tmkms-nitro/tmkms-nitro/internal/host"
)

// ceremonyFlags are what init, import and local init bind a new key to:
// its chains, the operator's nonce, and the anchor.
type ceremonyFlags struct {
	chainIDs  []string
	nonce     []byte
	endpoints string
	anchor    host.AnchorFiles
	instance  string
}

func (f *ceremonyFlags) register(fs *flag.FlagSet) {
	fs.Func("chain-id", "a chain the key may sign for; repeat for each (consumer chains may share a key). Fixed for good when the key is sealed", func(v string) error {
		if v == "" {
			return errors.New("empty")
		}
		f.chainIDs = append(f.chainIDs, v)
		return nil
	})
	fs.Func("nonce", "hex nonce of your choosing, echoed in the attestation documents (default: a random one, printed)", func(v string) (err error) {
		f.nonce, err = nonEmptyHex(v, 0)
		if err == nil && len(f.nonce) > 512 {
			err = errors.New("at most 512 bytes")
		}
		return err
	})
	fs.StringVar(&f.endpoints, "ha-endpoints", "", "the anchor: etcd client URLs, https://host:port,... (enables the anchor; see docs/anchor.md)")
	fs.StringVar(&f.anchor.CAFile, "ha-ca", "", "the anchor: PEM CA that verifies the etcd members")
	fs.StringVar(&f.anchor.CertFile, "ha-cert", "", "the anchor: PEM client certificate (no CommonName when --ha-user is set)")
	fs.StringVar(&f.anchor.KeyFile, "ha-key", "", "the anchor: PEM client key")
	fs.StringVar(&f.anchor.User, "ha-user", "", "the anchor: etcd user whose role reads and writes the prefix only")
	fs.StringVar(&f.anchor.PasswordFile, "ha-password-file", "", "the anchor: file whose first line is the etcd user's password")
	fs.StringVar(&f.anchor.Prefix, "ha-prefix", config.DefaultHAKeyPrefix, "the anchor: etcd key prefix of the signer's records")
	fs.StringVar(&f.instance, "instance", "", "this signer's name in the anchor's records (default: the host name)")
}

// anchorFiles returns the anchor the flags name, nil for none.
func (f *ceremonyFlags) anchorFiles() (*host.AnchorFiles, error) {
	a := f.anchor
	if f.endpoints == "" {
		if a.CAFile != "" || a.CertFile != "" || a.KeyFile != "" || a.User != "" || a.PasswordFile != "" {
			return nil, errors.New("--ha-ca, --ha-cert, --ha-key, --ha-user and --ha-password-file need --ha-endpoints")
		}
		return nil, nil
	}
	if a.CAFile == "" || a.CertFile == "" || a.KeyFile == "" {
		return nil, errors.New("an anchor (--ha-endpoints) needs --ha-ca, --ha-cert and --ha-key")
	}
	if (a.User == "") != (a.PasswordFile == "") {
		return nil, errors.New("--ha-user and --ha-password-file go together")
	}
	a.Endpoints = strings.Split(f.endpoints, ",")
	return &a, nil
}

// reportSealed prints the public key's attestation, saves it at docPath,
// and prints the verify-attestation command that checks,
// on a machine the operator trusts, everything the host could have lied
// about: the KMS key, the origin, the chains, the anchor, the nonce.
func reportSealed(env *Env, docPath string, s *host.Sealed, origin string, chainIDs []string, pcr0 []byte, root string) error {
	doc := base64.StdEncoding.EncodeToString(s.Consensus.Attestation)
	if err := atomicfile.WriteFile(docPath, []byte(doc+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Nitro Enclave attestation (also in %s):\n%s\n", docPath, doc)
	if s.Fingerprint != "" {
		fmt.Fprintf(env.Stdout, "anchor: %s\n", s.Fingerprint)
	}
	args := []string{prog, "verify-attestation"}
	if root != "" {
		args = append(args, "--root", root)
	}
	args = append(args, "--expect-pubkey", hex.EncodeToString(s.Consensus.PubKey), "--expect-kms-key", s.KMSKeyARN,
		"--expect-origin", origin, "--expect-nonce", hex.EncodeToString(s.Nonce))
	for _, c := range chainIDs {
		args = append(args, "--expect-chain-id", shellQuote(c))
	}
	args = append(args, "--expect-anchor", shellQuote(s.Fingerprint))
	if pcr0 != nil {
		args = append(args, "--expect-pcr0", hex.EncodeToString(pcr0))
	} else {
		args = append(args, "--expect-pcr0", "PCR0_OF_YOUR_OWN_BUILD")
	}
	fmt.Fprintf(env.Stdout, "\nBefore registering this key on chain, copy %s to a machine you trust and run there:\n  %s %s\n"+
		"Compare each value with what you know, not with this output: the KMS key ARN you created, the nonce you chose,\n"+
		"the PCR0 of the enclave image you built, and (with an anchor) the fingerprint of your etcd CA and prefix.\n",
		filepath.Base(docPath), strings.Join(args, " "), filepath.Base(docPath))
	return nil
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
