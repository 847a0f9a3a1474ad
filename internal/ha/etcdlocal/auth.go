package etcdlocal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tmkms-nitro/tmkms-nitro/internal/ha/etcdstore"
)

// Auth names the etcd users EnableAuth made.
type Auth struct {
	// Signer may read and write the keys under the prefix, nothing else:
	// the user sealed into the enclaves' anchor bundle.
	Signer, SignerPassword string
	// Root may do anything: the operator's, for recovery.
	Root, RootPassword string
}

// EnableAuth turns on etcd authentication as the anchor's deployment guide
// does: a root user, and a signer user whose only role reads and writes
// the keys under prefix.
func (c *Cluster) EnableAuth(prefix string) (Auth, error) {
	a := Auth{Signer: "tmkms-signer", SignerPassword: randomHex(), Root: "root", RootPassword: randomHex()}
	cli, err := c.client("", "")
	if err != nil {
		return Auth{}, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	steps := []func() error{
		func() error { _, err := cli.UserAdd(ctx, a.Root, a.RootPassword); return err },
		func() error { _, err := cli.UserGrantRole(ctx, a.Root, "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, "tmkms-signer"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "tmkms-signer", prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, a.Signer, a.SignerPassword); return err },
		func() error { _, err := cli.UserGrantRole(ctx, a.Signer, "tmkms-signer"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return Auth{}, fmt.Errorf("etcd auth setup: %w", err)
		}
	}
	return a, nil
}

// Client returns a client of the cluster as user (root, or "" before auth
// is on), authenticated with the certificate that has a CommonName.
func (c *Cluster) Client(user, password string) (*clientv3.Client, error) {
	return c.client(user, password)
}

func (c *Cluster) client(user, password string) (*clientv3.Client, error) {
	cert, key := c.Cert, c.Key
	if user != "" {
		// With auth on, a certificate's CN would be taken as the user.
		cert, key = c.AnchorCert, c.AnchorKey
	}
	tc, err := etcdstore.ClientTLS(c.CA, cert, key)
	if err != nil {
		return nil, err
	}
	return clientv3.New(clientv3.Config{Endpoints: c.Endpoints, TLS: tc, Username: user, Password: password, DialTimeout: 5 * time.Second})
}

func randomHex() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
