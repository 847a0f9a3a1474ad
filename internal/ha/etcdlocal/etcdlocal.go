// Package etcdlocal runs a real etcd cluster inside this process
// (go.etcd.io/etcd/server/v3/embed) on loopback, with client TLS and
// client certificate authentication as in production, for tests, the
// benchmark and demo --ha; members can be stopped and restarted.
package etcdlocal

import (
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/tmkms-nitro/tmkms-nitro/internal/atomicfile"
	"github.com/tmkms-nitro/tmkms-nitro/internal/config"
	"github.com/tmkms-nitro/tmkms-nitro/internal/localca"
)

// Cluster is a running cluster. Endpoints are https:// client URLs; CA,
// Cert and Key are PEM files of the CA that signed the servers and of a
// client certificate the servers accept.
type Cluster struct {
	Endpoints     []string
	CA, Cert, Key string
	// AnchorCert and AnchorKey are a client certificate without a
	// CommonName, for the enclave's anchor client: with auth on, etcd
	// would take a CN as the user of any call without a token.
	AnchorCert, AnchorKey string
	dir                   string
	names                 []string
	peers, clients        []string
	initial               string

	mu      sync.Mutex
	running []*embed.Etcd
}

// startAttempts bounds Start's tries.
const startAttempts = 3

// Start starts n members with their data, certificates and logs in dir,
// and returns once every member is ready (the cluster has a leader).
//
// Ports are picked by listening on port 0 and closing, so another process
// (a test binary starting its own cluster, say) can take one before the
// member binds it; such a start is tried again from an empty dir, on
// fresh ports.
func Start(dir string, n int) (*Cluster, error) {
	var err error
	for range startAttempts {
		if err = os.RemoveAll(dir); err != nil {
			break
		}
		var c *Cluster
		if c, err = startOnce(dir, n); err == nil {
			return c, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	return nil, err
}

func startOnce(dir string, n int) (*Cluster, error) {
	c := &Cluster{dir: dir, running: make([]*embed.Etcd, n)}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := c.writeCerts(); err != nil {
		return nil, err
	}
	var initial []string
	for i := range n {
		name := fmt.Sprintf("etcd%d", i)
		peer, err1 := freeAddr()
		client, err2 := freeAddr()
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		c.names = append(c.names, name)
		c.peers = append(c.peers, "http://"+peer)
		c.clients = append(c.clients, "https://"+client)
		initial = append(initial, name+"="+c.peers[i])
	}
	c.initial = strings.Join(initial, ",")
	c.Endpoints = c.clients
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- c.start(i) }()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		c.Close()
		return nil, first
	}
	return c, nil
}

// T is the part of testing.TB that StartT uses (this package is also
// linked into tmkms-nitro-dev, for demo --ha and the benchmark, so it does not
// import testing).
type T interface {
	Helper()
	TempDir() string
	Cleanup(func())
	Fatal(args ...any)
}

// StartT is Start for a test, stopped when the test ends.
func StartT(t T, n int) *Cluster {
	t.Helper()
	c, err := Start(t.TempDir(), n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func mustURL(s string) url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return *u
}

// start (re)starts member i from its data directory.
func (c *Cluster) start(i int) error {
	cfg := embed.NewConfig()
	cfg.Name = c.names[i]
	cfg.Dir = filepath.Join(c.dir, c.names[i])
	cfg.ListenPeerUrls = []url.URL{mustURL(c.peers[i])}
	cfg.AdvertisePeerUrls = cfg.ListenPeerUrls
	cfg.ListenClientUrls = []url.URL{mustURL(c.clients[i])}
	cfg.AdvertiseClientUrls = cfg.ListenClientUrls
	cfg.InitialCluster = c.initial
	cfg.InitialClusterToken = "tmkms-nitro-test"
	cfg.ClientTLSInfo = transport.TLSInfo{CertFile: c.serverCert(), KeyFile: c.serverKey(), TrustedCAFile: c.CA, ClientCertAuth: true}
	// Elections as in a LAN deployment, fast enough for tests.
	cfg.TickMs, cfg.ElectionMs = 50, 500
	// bcrypt's minimum cost: at the default each authentication takes
	// tens of milliseconds of CPU, and under -race on a loaded 2-core
	// machine six concurrent ones outlast a test's deadline. Production
	// etcd keeps its default.
	cfg.BcryptCost = 4
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{filepath.Join(c.dir, c.names[i]+".log")}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("etcd member %d: %w", i, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("etcd member %d: %w", i, err)
	case <-time.After(60 * time.Second):
		e.Close()
		return fmt.Errorf("etcd member %d did not become ready", i)
	}
	c.mu.Lock()
	c.running[i] = e
	c.mu.Unlock()
	return nil
}

// Stop stops member i (a crash, as far as the others can tell).
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	e := c.running[i]
	c.running[i] = nil
	c.mu.Unlock()
	if e != nil {
		e.Close()
	}
}

// RestartStopped restarts every stopped member concurrently (members
// of a lost quorum must come back together: each waits for the others).
func (c *Cluster) RestartStopped() error {
	c.mu.Lock()
	var stopped []int
	for i, e := range c.running {
		if e == nil {
			stopped = append(stopped, i)
		}
	}
	c.mu.Unlock()
	errs := make(chan error, len(stopped))
	for _, i := range stopped {
		go func() { errs <- c.start(i) }()
	}
	var first error
	for range stopped {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// HA is the [ha] table of a signer instance using this cluster, with a
// short lease so that tests see instances come and go.
func (c *Cluster) HA(instance string) *config.HA {
	return &config.HA{Endpoints: c.Endpoints, CAFile: c.CA, CertFile: c.Cert, KeyFile: c.Key,
		KeyPrefix: config.DefaultHAKeyPrefix, LeaseTTL: 3, Instance: instance}
}

// Leader returns the index of the member that is leader, or -1.
func (c *Cluster) Leader() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.running {
		if e != nil && e.Server.Leader() == e.Server.MemberID() {
			return i
		}
	}
	return -1
}

// Close stops every member.
func (c *Cluster) Close() {
	for i := range c.running {
		c.Stop(i)
	}
}

func (c *Cluster) serverCert() string { return filepath.Join(c.dir, "server.pem") }
func (c *Cluster) serverKey() string  { return filepath.Join(c.dir, "server-key.pem") }

// writeCerts makes a CA, a server certificate for 127.0.0.1 and the
// client certificates.
func (c *Cluster) writeCerts() error {
	now := time.Now()
	ca, err := localca.New(elliptic.P256(), localca.Spec{
		Subject: pkix.Name{CommonName: "tmkms-nitro test etcd CA"}, Kind: localca.LeafCA, Lifetime: 24 * time.Hour,
	}, now)
	if err != nil {
		return err
	}
	c.CA = filepath.Join(c.dir, "ca.pem")
	if err := atomicfile.WriteFile(c.CA, ca.CertPEM(), 0o600); err != nil {
		return err
	}
	leaf := func(name string, usages []x509.ExtKeyUsage, certPath, keyPath string) error {
		l, err := ca.Issue(localca.Spec{
			Subject: pkix.Name{CommonName: name}, Names: []string{"127.0.0.1", "localhost"},
			Usages: usages, Lifetime: 24 * time.Hour,
		}, now)
		if err != nil {
			return err
		}
		return l.Save(certPath, keyPath)
	}
	// The server certificate is a client one too: etcd's JSON gateway
	// reaches its own gRPC server with it.
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	if err := leaf("etcd", both, c.serverCert(), c.serverKey()); err != nil {
		return err
	}
	c.Cert, c.Key = filepath.Join(c.dir, "client.pem"), filepath.Join(c.dir, "client-key.pem")
	if err := leaf("tmkms-nitro", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, c.Cert, c.Key); err != nil {
		return err
	}
	c.AnchorCert, c.AnchorKey = filepath.Join(c.dir, "anchor-client.pem"), filepath.Join(c.dir, "anchor-client-key.pem")
	return leaf("", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, c.AnchorCert, c.AnchorKey)
}
