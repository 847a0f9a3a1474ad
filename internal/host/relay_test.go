package host

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// TestRelay carries bytes both ways between an enclave's connection and
// an etcd member, drops the enclave's connection when the member cannot
// be reached, and closes every relayed connection before Serve returns.
func TestRelay(t *testing.T) {
	member, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	goneAddr := gone.Addr().String()
	gone.Close()

	serve := func(target string) (ln net.Listener, stop func() error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- (&Relay{Target: target, Log: slog.New(slog.DiscardHandler)}).Serve(ctx, ln) }()
		return ln, func() error { cancel(); return <-done }
	}
	expectEOF := func(name string, c net.Conn) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("%s: read %v, want EOF", name, err)
		}
	}

	t.Run("unreachable member", func(t *testing.T) {
		ln, stop := serve(goneAddr)
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		expectEOF("enclave side", c)
		if err := stop(); err != nil {
			t.Fatalf("Serve = %v", err)
		}
	})

	t.Run("relays until stopped", func(t *testing.T) {
		ln, stop := serve(member.Addr().String())
		enclave, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer enclave.Close()
		up, err := member.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer up.Close()
		exchange(t, enclave, up)
		if err := stop(); err != nil {
			t.Fatalf("Serve = %v, want nil once its context ends", err)
		}
		expectEOF("enclave side", enclave)
		expectEOF("member side", up)
	})
}

// exchange checks that bytes written on a arrive on b, and back.
func exchange(t *testing.T, a, b net.Conn) {
	t.Helper()
	for _, hop := range []struct{ from, to net.Conn }{{a, b}, {b, a}} {
		if _, err := hop.from.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(hop.to, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("carried %q, %v", buf, err)
		}
	}
}
