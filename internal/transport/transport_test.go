package transport

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	cmtprivval "github.com/cometbft/cometbft/privval"
)

func TestParseAddr(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef01234567"
	good := []struct {
		in   string
		want Addr
	}{
		{"unix:///tmp/sockets/validator.socket", Addr{Scheme: Unix, Path: "/tmp/sockets/validator.socket"}},
		{"tcp://127.0.0.1:26659", Addr{Scheme: TCP, Host: "127.0.0.1:26659"}},
		{"tcp://" + id + "@10.0.0.1:26659", Addr{Scheme: TCP, Host: "10.0.0.1:26659", NodeID: id}},
		{"vsock://3:5000", Addr{Scheme: Vsock, CID: 3, Port: 5000}},
	}
	for _, tt := range good {
		got, err := ParseAddr(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseAddr(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if got.String() != tt.in {
			t.Errorf("String() = %q, want %q", got.String(), tt.in)
		}
	}
	for _, bad := range []string{"", "/tmp/x", "unix://relative", "unix:///a\x00b", "tcp://nohost", "tcp://h:65536", "tcp://h:x",
		"tcp://xyz@1.2.3.4:5", "vsock://3", "vsock://a:b", "http://x:1"} {
		if _, err := ParseAddr(bad); !errors.Is(err, ErrAddress) {
			t.Errorf("ParseAddr(%q) = %v, want ErrAddress", bad, err)
		}
	}
}

func TestParseValidator(t *testing.T) {
	tests := []struct {
		in     string
		ok     bool
		secret bool // the scheme needs the identity key
	}{
		{"unix:///run/validator.sock", true, false},
		{"tcp://127.0.0.1:26659", true, true},
		{"tcp://0123456789abcdef0123456789abcdef01234567@10.0.0.2:26659", true, true},
		{"tcp://node.example:26659", true, true},
		{"vsock://3:5000", false, false},
		{"tcp://:26659", false, false},
		{"tcp://h:0", false, false},
		{"tcp://h:00", false, false},
		{"http://h:1", false, false},
	}
	for _, tt := range tests {
		a, err := ParseValidator(tt.in)
		if (err == nil) != tt.ok || err != nil && !errors.Is(err, ErrAddress) {
			t.Errorf("ParseValidator(%q) = %v, want ok %v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && a.Scheme.Secret() != tt.secret {
			t.Errorf("%q: Secret() = %v, want %v", tt.in, a.Scheme.Secret(), tt.secret)
		}
	}
}

func TestLocal(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef01234567"
	cases := []struct {
		addr string
		want bool
	}{
		{"unix:///run/validator.sock", true},
		{"tcp://127.0.0.1:26659", true},
		{"tcp://127.8.9.10:26659", true},
		{"tcp://[::1]:26659", true},
		{"tcp://[::ffff:127.0.0.1]:26659", true},
		{"tcp://localhost:26659", true},
		{"tcp://LocalHost:26659", true},
		{"tcp://" + id + "@127.0.0.1:26659", true},
		{"tcp://192.0.2.1:26659", false},
		{"tcp://" + id + "@192.0.2.1:26659", false},
		{"tcp://[2001:db8::1]:26659", false},
		{"tcp://0.0.0.0:26659", false},
		{"tcp://[::]:26659", false},
		{"tcp://validator.example:26659", false},
		{"tcp://localhost.example:26659", false},
		{"vsock://3:5000", false},
	}
	for _, c := range cases {
		a, err := ParseAddr(c.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.Local(); got != c.want {
			t.Errorf("Local(%q) = %v, want %v", c.addr, got, c.want)
		}
	}
}

// Every scheme a validator may use has a syntax to show in messages.
func TestValidatorSchemesHaveSyntax(t *testing.T) {
	for _, s := range ValidatorSchemes {
		if s.syntax() == "" {
			t.Errorf("scheme %q has no syntax", s)
		}
	}
}

// A tcp address needs an identity key: Dial refuses without one before
// connecting anywhere.
func TestDialNeedsIdentity(t *testing.T) {
	if _, err := Dial(t.Context(), Addr{Scheme: TCP, Host: "127.0.0.1:1"}, nil); err == nil {
		t.Fatal("Dial of tcp without an identity key succeeded")
	}
}

// A pinned node id refuses any other peer; the right one connects.
func TestPinnedPeer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nodeKey := cmted25519.GenPrivKey()
	ln := cmtprivval.NewTCPListener(l, nodeKey)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { c.Read(make([]byte, 1)); c.Close() }()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	me := ed25519.PrivateKey(cmted25519.GenPrivKey())
	nodeID := NodeID(ed25519.PublicKey(nodeKey.PubKey().Bytes()))
	if want := strings.ToLower(nodeKey.PubKey().Address().String()); nodeID != want {
		t.Fatalf("NodeID = %s, CometBFT derives %s", nodeID, want)
	}
	right := Addr{Scheme: TCP, Host: l.Addr().String(), NodeID: nodeID}
	c, err := Dial(ctx, right, me)
	if err != nil {
		t.Fatalf("pinned right peer: %v", err)
	}
	c.Close()
	wrong := right
	wrong.NodeID = NodeID(ed25519.PublicKey(cmted25519.GenPrivKey().PubKey().Bytes()))
	if _, err := Dial(ctx, wrong, me); !errors.Is(err, ErrPeerMismatch) {
		t.Fatalf("pinned wrong peer: err = %v, want ErrPeerMismatch", err)
	}
}
