package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tmkms-nitro/tmkms-nitro/internal/config"
	"github.com/tmkms-nitro/tmkms-nitro/internal/ha/etcdlocal"
	"github.com/tmkms-nitro/tmkms-nitro/internal/host"
)

// startAnchor runs configuration (e): a 3-member etcd cluster on loopback
// with auth on, as the anchor's deployment guide sets it up, and the local
// stack whose enclave commits to it itself. The subject also times raw
// etcd transactions on that cluster, as the same signer user.
func startAnchor(ctx context.Context, dir string, o Options) (*subject, error) {
	return onCluster(dir, o, func(c *etcdlocal.Cluster) (*subject, error) {
		auth, err := c.EnableAuth(config.DefaultHAKeyPrefix)
		if err != nil {
			return nil, err
		}
		files, err := anchorFiles(c, auth, dir)
		if err != nil {
			return nil, err
		}
		s, err := startStack(ctx, dir, o, stackSetup{cfg: Anchor, anchor: files})
		if err != nil {
			return nil, err
		}
		if s.txn, err = newEtcdTxn(ctx, c, auth); err != nil {
			s.stop()
			return nil, err
		}
		s.thenStop(s.txn.close)
		return s, nil
	})
}

// anchorFiles are what the operator hands `local init --ha-*`: the
// cluster's CA, the client certificate without a CommonName (with auth on,
// etcd would take a CommonName for the user), and the signer user's
// password in a file of its own.
func anchorFiles(c *etcdlocal.Cluster, auth etcdlocal.Auth, dir string) (*host.AnchorFiles, error) {
	pw := filepath.Join(dir, "etcd-password")
	if err := os.WriteFile(pw, []byte(auth.SignerPassword+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("writing the etcd password file: %w", err)
	}
	return &host.AnchorFiles{Endpoints: c.Endpoints, CAFile: c.CA, CertFile: c.AnchorCert, KeyFile: c.AnchorKey,
		User: auth.Signer, PasswordFile: pw, Prefix: config.DefaultHAKeyPrefix}, nil
}
