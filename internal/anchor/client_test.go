package anchor_test

import (
	"bytes"
	"context"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/anchor"
	"github.com/tmkms-nitro/tmkms-nitro/internal/ha/etcdlocal"
	"github.com/tmkms-nitro/tmkms-nitro/internal/localca"
)

const prefix = "/tmkms-nitro/"

// cluster starts a 3-member etcd with auth on and returns the bundle an
// enclave would have sealed.
func cluster(t testing.TB) (*etcdlocal.Cluster, *anchor.Bundle, etcdlocal.Auth) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts an etcd cluster")
	}
	c := etcdlocal.StartT(t, 3)
	auth, err := c.EnableAuth(prefix)
	if err != nil {
		t.Fatal(err)
	}
	return c, Bundle(t, c, auth), auth
}

// Bundle is the anchor bundle of c for the signer user.
func Bundle(t testing.TB, c *etcdlocal.Cluster, a etcdlocal.Auth) *anchor.Bundle {
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return &anchor.Bundle{Endpoints: c.Endpoints, CA: read(c.CA), Cert: read(c.AnchorCert), Key: read(c.AnchorKey),
		Username: a.Signer, Password: a.SignerPassword, Prefix: prefix}
}

// direct is the host's relay without the host: a TCP connection to member i.
func direct(b *anchor.Bundle) anchor.Dialer {
	return func(ctx context.Context, i int) (net.Conn, error) {
		u, err := url.Parse(b.Endpoints[i])
		if err != nil {
			return nil, err
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", u.Host)
	}
}

func newClient(t testing.TB, b *anchor.Bundle, chain string, dial anchor.Dialer) *anchor.Client {
	t.Helper()
	c, err := anchor.New(b, chain, dial)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestCompareAndSwap(t *testing.T) {
	_, b, _ := cluster(t)
	c := newClient(t, b, "chain-a", direct(b))
	ok, cur, rev, err := c.CompareAndSwap(ctx(t), -1, []byte("never written"))
	if err != nil || ok || cur != nil || rev != 0 {
		t.Fatalf("read of an absent record = %v %q %d %v", ok, cur, rev, err)
	}
	ok, _, rev1, err := c.CompareAndSwap(ctx(t), 0, []byte("first"))
	if err != nil || !ok || rev1 <= 0 {
		t.Fatalf("first write = %v %d %v", ok, rev1, err)
	}
	ok, cur, rev, err = c.CompareAndSwap(ctx(t), 0, []byte("stale"))
	if err != nil || ok || string(cur) != "first" || rev != rev1 {
		t.Fatalf("stale write = %v %q %d %v, want the first record at %d", ok, cur, rev, err, rev1)
	}
	ok, _, rev2, err := c.CompareAndSwap(ctx(t), rev1, []byte("second"))
	if err != nil || !ok || rev2 <= rev1 {
		t.Fatalf("second write = %v %d %v", ok, rev2, err)
	}
	// Another chain's record is another key.
	other := newClient(t, b, "chain-b", direct(b))
	if ok, cur, _, err := other.CompareAndSwap(ctx(t), -1, nil); err != nil || ok || cur != nil {
		t.Fatalf("other chain = %v %q %v", ok, cur, err)
	}
}

// TestOneWinner races instances on one revision: exactly one write lands.
func TestOneWinner(t *testing.T) {
	_, b, _ := cluster(t)
	const n = 6
	var wg sync.WaitGroup
	won := make(chan int, n)
	for i := range n {
		wg.Go(func() {
			c, err := anchor.New(b, "race", direct(b))
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			ok, _, _, err := c.CompareAndSwap(ctx(t), 0, []byte{byte(i)})
			if err != nil {
				t.Error(err)
			}
			if ok {
				won <- i
			}
		})
	}
	wg.Wait()
	close(won)
	if len(won) != 1 {
		t.Fatalf("%d writes won, want 1", len(won))
	}
}

func TestFailover(t *testing.T) {
	c, b, _ := cluster(t)
	cl := newClient(t, b, "failover", direct(b))
	if _, _, _, err := cl.CompareAndSwap(ctx(t), 0, []byte("a")); err != nil {
		t.Fatal(err)
	}
	c.Stop(0)
	ok, cur, _, err := cl.CompareAndSwap(ctx(t), -1, nil)
	if err != nil || ok || string(cur) != "a" {
		t.Fatalf("after member 0 stopped: %v %q %v", ok, cur, err)
	}
	c.Stop(1) // no quorum: fail, within the caller's deadline
	short, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_, _, _, err = cl.CompareAndSwap(short, -1, nil)
	if !errors.Is(err, anchor.ErrUnavailable) {
		t.Fatalf("without quorum: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("without quorum the call took %v", d)
	}
}

// TestHostileRelay plays the host, which relays the enclave's bytes to
// etcd: it can read them, change them, send them elsewhere or replay old
// answers, but TLS ends in the enclave, so each attempt only fails.
func TestHostileRelay(t *testing.T) {
	c, b, _ := cluster(t)
	good := newClient(t, b, "hostile", direct(b))
	ok, _, rev, err := good.CompareAndSwap(ctx(t), 0, []byte("committed"))
	if err != nil || !ok {
		t.Fatal(ok, err)
	}

	t.Run("man in the middle with a CA the host made", func(t *testing.T) {
		fake := fakeEtcd(t)
		cl := newClient(t, b, "hostile", func(ctx context.Context, _ int) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", fake)
		})
		_, _, _, err := cl.CompareAndSwap(ctx(t), -1, nil)
		if !errors.Is(err, anchor.ErrUnavailable) || !isCertError(err) {
			t.Fatalf("through a fake etcd: %v, want a certificate error", err)
		}
	})

	t.Run("replay of an old answer", func(t *testing.T) {
		// Record a whole exchange (the read of the record at rev), let
		// the record move on, then answer a new connection with the
		// recorded server bytes.
		rec := &recorder{dial: direct(b)}
		cl := newClient(t, b, "hostile", rec.Dial)
		if _, cur, r, err := cl.CompareAndSwap(ctx(t), -1, nil); err != nil || r != rev || string(cur) != "committed" {
			t.Fatal(cur, r, err)
		}
		cl.Close()
		if ok, _, _, err := good.CompareAndSwap(ctx(t), rev, []byte("later")); err != nil || !ok {
			t.Fatal(ok, err)
		}
		replay := newClient(t, b, "hostile", rec.Replay)
		_, cur, _, err := replay.CompareAndSwap(ctx(t), -1, nil)
		if err == nil || bytes.Equal(cur, []byte("committed")) {
			t.Fatalf("a replayed answer was accepted: %q %v", cur, err)
		}
	})

	t.Run("the host's own etcd certificate cannot write the record", func(t *testing.T) {
		// The host holds at most a certificate with a CommonName (for
		// monitoring); with auth on it is a user with no rights here.
		cli, err := c.Client("", "")
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		_, err = cli.Delete(ctx(t), good.Key())
		if err == nil {
			t.Fatal("the host's certificate deleted the record")
		}
		_, err = cli.Put(ctx(t), good.Key(), "forged")
		if err == nil {
			t.Fatal("the host's certificate wrote the record")
		}
	})
}

// recorder relays to etcd and keeps what the server sent on the last
// connection, to replay it later.
type recorder struct {
	dial anchor.Dialer
	mu   sync.Mutex
	sent []byte
}

func (r *recorder) Dial(ctx context.Context, i int) (net.Conn, error) {
	up, err := r.dial(ctx, i)
	if err != nil {
		return nil, err
	}
	a, b := net.Pipe()
	go func() { _, _ = io.Copy(up, b); up.Close() }()
	go func() {
		var buf bytes.Buffer
		_, _ = io.Copy(io.MultiWriter(b, &buf), up)
		b.Close()
		r.mu.Lock()
		r.sent = buf.Bytes()
		r.mu.Unlock()
	}()
	return a, nil
}

func (r *recorder) Replay(context.Context, int) (net.Conn, error) {
	a, b := net.Pipe()
	r.mu.Lock()
	sent := r.sent
	r.mu.Unlock()
	go func() { _, _ = io.Copy(io.Discard, b) }()
	go func() { _, _ = b.Write(sent); b.Close() }()
	return a, nil
}

// fakeEtcd serves TLS on loopback with a certificate for 127.0.0.1 from a
// CA the host made.
func fakeEtcd(t *testing.T) string {
	ca, err := localca.New(elliptic.P256(), localca.Spec{Subject: pkix.Name{CommonName: "host CA"}, Kind: localca.LeafCA, Lifetime: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(localca.Spec{Subject: pkix.Name{CommonName: "etcd"}, Names: []string{"127.0.0.1"},
		Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, Lifetime: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf.TLS()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{\"header\":{\"revision\":\"1\"},\"succeeded\":1}"))
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func isCertError(err error) bool {
	var ua x509.UnknownAuthorityError
	var cv *tls.CertificateVerificationError
	return errors.As(err, &ua) || errors.As(err, &cv)
}
