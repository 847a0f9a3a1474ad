// Package transport gives every connection this project makes one address
// syntax and the standard net.Conn/net.Listener types:
//
//	unix:///path/to/socket
//	tcp://[node_id@]host:port   (privval over CometBFT SecretConnection)
//	vsock://cid:port            (Nitro host <-> enclave)
//
// Every dial takes a context; a dial that completes a handshake bounds the
// handshake with the context's deadline or DefaultHandshakeTimeout.
package transport

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/secretconn"
)

// DefaultHandshakeTimeout bounds a SecretConnection handshake.
const DefaultHandshakeTimeout = 5 * time.Second

// ErrPeerMismatch marks a SecretConnection peer whose key does not match the
// node id pinned in the address.
var ErrPeerMismatch = errors.New("peer identity mismatch")

// Addr is a parsed address.
type Addr struct {
	Scheme string // "unix", "tcp" or "vsock"
	Path   string // unix
	Host   string // tcp: host:port
	NodeID string // tcp: optional pinned peer id (hex of its address)
	CID    uint32 // vsock
	Port   uint32 // vsock
}

// ParseAddr parses an address in the syntax above.
func ParseAddr(s string) (Addr, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return Addr{}, fmt.Errorf("transport: address %q has no scheme (want unix://, tcp:// or vsock://)", s)
	}
	switch scheme {
	case "unix":
		if rest == "" || rest[0] != '/' {
			return Addr{}, fmt.Errorf("transport: unix address %q must be an absolute path (unix:///path)", s)
		}
		return Addr{Scheme: scheme, Path: rest}, nil
	case "tcp":
		a := Addr{Scheme: scheme, Host: rest}
		if id, host, ok := strings.Cut(rest, "@"); ok {
			a.NodeID, a.Host = strings.ToLower(id), host
			if len(a.NodeID) != 40 || strings.Trim(a.NodeID, "0123456789abcdef") != "" {
				return Addr{}, fmt.Errorf("transport: node id %q in %q must be 40 hex characters", id, s)
			}
		}
		if _, port, err := net.SplitHostPort(a.Host); err != nil || port == "" {
			return Addr{}, fmt.Errorf("transport: tcp address %q must be host:port", s)
		}
		return a, nil
	case "vsock":
		cid, port, ok := strings.Cut(rest, ":")
		c, err1 := strconv.ParseUint(cid, 10, 32)
		p, err2 := strconv.ParseUint(port, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			return Addr{}, fmt.Errorf("transport: vsock address %q must be vsock://cid:port", s)
		}
		return Addr{Scheme: scheme, CID: uint32(c), Port: uint32(p)}, nil
	}
	return Addr{}, fmt.Errorf("transport: unsupported scheme %q in %q (want unix, tcp or vsock)", scheme, s)
}

func (a Addr) String() string {
	switch a.Scheme {
	case "unix":
		return (&url.URL{Scheme: "unix", Path: a.Path}).String()
	case "tcp":
		if a.NodeID != "" {
			return "tcp://" + a.NodeID + "@" + a.Host
		}
		return "tcp://" + a.Host
	case "vsock":
		return fmt.Sprintf("vsock://%d:%d", a.CID, a.Port)
	}
	return ""
}

// Dial connects to a. For tcp it performs the SecretConnection handshake
// with identity as our key and, when a.NodeID is set, refuses any other
// peer. identity may be nil for unix and vsock.
func Dial(ctx context.Context, a Addr, identity ed25519.PrivateKey) (net.Conn, error) {
	switch a.Scheme {
	case "unix":
		var d net.Dialer
		return d.DialContext(ctx, "unix", a.Path)
	case "tcp":
		return dialSecret(ctx, a, identity)
	case "vsock":
		return dialVsock(ctx, a.CID, a.Port)
	}
	return nil, fmt.Errorf("transport: cannot dial %q", a.String())
}

func dialSecret(ctx context.Context, a Addr, identity ed25519.PrivateKey) (net.Conn, error) {
	if identity == nil {
		return nil, errors.New("transport: tcp requires an identity key for SecretConnection")
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", a.Host)
	if err != nil {
		return nil, err
	}
	return Secure(ctx, c, identity, a.NodeID)
}

// Secure runs the SecretConnection handshake on c and, when nodeID is not
// empty, refuses a peer with another identity. It closes c on failure.
func Secure(ctx context.Context, c net.Conn, identity ed25519.PrivateKey, nodeID string) (net.Conn, error) {
	sc, err := handshake(ctx, c, identity)
	if err != nil {
		return nil, err
	}
	if err := checkPeer(nodeID, sc.RemotePubKey()); err != nil {
		sc.Close()
		return nil, err
	}
	return sc, nil
}

// handshake runs the SecretConnection handshake on c, bounded by ctx's
// deadline or DefaultHandshakeTimeout. It closes c on failure.
func handshake(ctx context.Context, c net.Conn, identity ed25519.PrivateKey) (*secretconn.Conn, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultHandshakeTimeout)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := c.SetDeadline(deadline); err != nil {
		c.Close()
		return nil, err
	}
	sc, err := secretconn.Handshake(c, identity)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("transport: SecretConnection handshake with %s failed: %w", c.RemoteAddr(), err)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		c.Close()
		return nil, err
	}
	return sc, nil
}

// NodeID is the id CometBFT derives from an ed25519 key: the hex of its
// address, the first 20 bytes of its SHA-256.
func NodeID(pk ed25519.PublicKey) string {
	sum := sha256.Sum256(pk)
	return hex.EncodeToString(sum[:20])
}

func checkPeer(want string, got ed25519.PublicKey) error {
	if want == "" {
		return nil
	}
	if subtle.ConstantTimeCompare([]byte(want), []byte(NodeID(got))) != 1 {
		return fmt.Errorf("transport: %w: expected node %s, peer is %s", ErrPeerMismatch, want, NodeID(got))
	}
	return nil
}

// Port returns the address of port on a host whose base address is base:
// the same CID for vsock (vsock://3 → vsock://3:port), and a socket file in
// the base directory for unix (unix:///dir → unix:///dir/port-N.sock), which
// is how local mode stands in for vsock.
func Port(base Addr, port uint32) Addr {
	if base.Scheme == "unix" {
		return Addr{Scheme: "unix", Path: fmt.Sprintf("%s/port-%d.sock", strings.TrimRight(base.Path, "/"), port)}
	}
	return Addr{Scheme: base.Scheme, CID: base.CID, Port: port, Host: base.Host}
}
