package anchor

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/ha/etcdlocal"
)

// Calls refused by a real etcd give errors that say why.

func authCluster(t *testing.T) (*Bundle, Dialer) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts an etcd cluster")
	}
	c := etcdlocal.StartT(t, 1)
	const prefix = "/tmkms-nitro/"
	auth, err := c.EnableAuth(prefix)
	if err != nil {
		t.Fatal(err)
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := &Bundle{Endpoints: c.Endpoints, CA: read(c.CA), Cert: read(c.AnchorCert), Key: read(c.AnchorKey),
		Username: auth.Signer, Password: auth.SignerPassword, Prefix: prefix}
	dial := func(ctx context.Context, i int) (net.Conn, error) {
		hp, _ := hostPort(b.Endpoints[i])
		var d net.Dialer
		return d.DialContext(ctx, "tcp", hp)
	}
	return b, dial
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRefusals(t *testing.T) {
	b, dial := authCluster(t)

	t.Run("permission denied outside the user's prefix", func(t *testing.T) {
		other := *b
		other.Prefix = "/elsewhere/"
		cl, err := New(&other, "chain", dial)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		_, _, _, err = cl.CompareAndSwap(testCtx(t), 0, []byte("x"))
		var re *rpcError
		if !errors.Is(err, ErrUnavailable) || !errors.As(err, &re) || re.Code != codePermissionDenied {
			t.Fatalf("%v, want ErrUnavailable and permission denied", err)
		}
		t.Log(err)
		if !strings.Contains(err.Error(), "permission denied") {
			t.Fatalf("error does not say permission denied: %v", err)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		bad := *b
		bad.Password = "wrong"
		cl, err := New(&bad, "chain", dial)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		_, _, _, err = cl.CompareAndSwap(testCtx(t), -1, nil)
		t.Log(err)
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "authentication failed") {
			t.Fatalf("%v, want ErrUnavailable and an authentication failure", err)
		}
	})

	t.Run("a stale token is replaced", func(t *testing.T) {
		cl, err := New(b, "chain", dial)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if _, _, _, err := cl.CompareAndSwap(testCtx(t), -1, nil); err != nil {
			t.Fatal(err)
		}
		cl.mu.Lock()
		cl.token = "not-a-token.1" // as after the member restarted
		cl.mu.Unlock()
		if _, _, _, err := cl.CompareAndSwap(testCtx(t), -1, nil); err != nil {
			t.Fatalf("with a stale token: %v", err)
		}
		cl.mu.Lock()
		defer cl.mu.Unlock()
		if cl.token == "not-a-token.1" || cl.token == "" {
			t.Fatalf("token not renewed: %q", cl.token)
		}
	})

	t.Run("a passed deadline", func(t *testing.T) {
		cl, err := New(b, "chain", dial)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
		defer cancel()
		<-ctx.Done()
		if _, _, _, err := cl.CompareAndSwap(ctx, -1, nil); !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%v, want ErrUnavailable and the deadline", err)
		}
	})
}
