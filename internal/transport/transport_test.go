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
		{"unix:///tmp/sockets/validator.socket", Addr{Scheme: "unix", Path: "/tmp/sockets/validator.socket"}},
		{"tcp://127.0.0.1:26659", Addr{Scheme: "tcp", Host: "127.0.0.1:26659"}},
		{"tcp://" + id + "@10.0.0.1:26659", Addr{Scheme: "tcp", Host: "10.0.0.1:26659", NodeID: id}},
		{"vsock://3:5000", Addr{Scheme: "vsock", CID: 3, Port: 5000}},
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
	for _, bad := range []string{"", "/tmp/x", "unix://relative", "tcp://nohost", "tcp://xyz@1.2.3.4:5", "vsock://3", "vsock://a:b", "http://x:1"} {
		if _, err := ParseAddr(bad); err == nil {
			t.Errorf("ParseAddr(%q) succeeded", bad)
		}
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
	right := Addr{Scheme: "tcp", Host: l.Addr().String(), NodeID: nodeID}
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
