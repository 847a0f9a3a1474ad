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
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/secretconn"
)

// DefaultHandshakeTimeout bounds a SecretConnection handshake.
const DefaultHandshakeTimeout = 5 * time.Second

var (
	// ErrPeerMismatch marks a SecretConnection peer whose key does not
	// match the node id pinned in the address.
	ErrPeerMismatch = errors.New("peer identity mismatch")
	// ErrAddress marks an address that does not parse, or whose scheme
	// cannot serve where it is used.
	ErrAddress = errors.New("invalid address")
)

// Scheme names a transport. What a connection over it needs is asked of
// the scheme, never read from its spelling, so that adding a transport
// means a constant and its cases in this package, and, for a validator
// transport, an entry in ValidatorSchemes.
type Scheme string

const (
	Unix  Scheme = "unix"
	TCP   Scheme = "tcp"
	Vsock Scheme = "vsock"
)

// ValidatorSchemes are the transports a validator's privval address may
// use: the node listens on them and the enclave dials through the host.
var ValidatorSchemes = []Scheme{Unix, TCP}

// Secret reports whether connections over s run CometBFT's
// SecretConnection: the dialer needs its identity key, and an address may
// pin the peer by node id.
func (s Scheme) Secret() bool { return s == TCP }

// syntax is the address form of s, for messages.
func (s Scheme) syntax() string {
	switch s {
	case Unix:
		return "unix:///path"
	case TCP:
		return "tcp://[node_id@]host:port"
	case Vsock:
		return "vsock://cid:port"
	}
	return ""
}

// Addr is a parsed address.
type Addr struct {
	Scheme Scheme
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
		return Addr{}, fmt.Errorf("transport: %w: %q has no scheme (want unix://, tcp:// or vsock://)", ErrAddress, s)
	}
	switch a := (Addr{Scheme: Scheme(scheme)}); a.Scheme {
	case Unix:
		if rest == "" || rest[0] != '/' || strings.ContainsRune(rest, 0) {
			return Addr{}, fmt.Errorf("transport: %w: %q must name an absolute socket path (unix:///path)", ErrAddress, s)
		}
		a.Path = rest
		return a, nil
	case TCP:
		a.Host = rest
		if id, host, ok := strings.Cut(rest, "@"); ok {
			a.NodeID, a.Host = strings.ToLower(id), host
			if len(a.NodeID) != 40 || strings.Trim(a.NodeID, "0123456789abcdef") != "" {
				return Addr{}, fmt.Errorf("transport: %w: node id %q in %q must be 40 hex digits (the node's `cometbft show-node-id`)", ErrAddress, id, s)
			}
		}
		if _, port, err := net.SplitHostPort(a.Host); err != nil || !validPort(port) {
			return Addr{}, fmt.Errorf("transport: %w: %q is not tcp://[node_id@]host:port with a port from 0 to 65535", ErrAddress, s)
		}
		return a, nil
	case Vsock:
		cid, port, ok := strings.Cut(rest, ":")
		c, err1 := strconv.ParseUint(cid, 10, 32)
		p, err2 := strconv.ParseUint(port, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			return Addr{}, fmt.Errorf("transport: %w: %q must be vsock://cid:port", ErrAddress, s)
		}
		a.CID, a.Port = uint32(c), uint32(p)
		return a, nil
	}
	return Addr{}, fmt.Errorf("transport: %w: scheme %q in %q is not supported (want unix, tcp or vsock)", ErrAddress, scheme, s)
}

func validPort(s string) bool {
	_, err := strconv.ParseUint(s, 10, 16)
	return err == nil
}

// ParseValidator parses a validator's privval address: one of
// ValidatorSchemes, and for tcp a host and a port a node can listen on.
func ParseValidator(s string) (Addr, error) {
	a, err := ParseAddr(s)
	if err != nil {
		return Addr{}, err
	}
	if !slices.Contains(ValidatorSchemes, a.Scheme) {
		return Addr{}, fmt.Errorf("transport: %w: a validator address must be %s, not %q", ErrAddress, validatorSyntax(), s)
	}
	if a.Scheme == TCP {
		host, port, _ := net.SplitHostPort(a.Host)
		if n, _ := strconv.ParseUint(port, 10, 16); host == "" || n == 0 {
			return Addr{}, fmt.Errorf("transport: %w: %q needs a host and a port from 1 to 65535", ErrAddress, s)
		}
	}
	return a, nil
}

func validatorSyntax() string {
	forms := make([]string, len(ValidatorSchemes))
	for i, s := range ValidatorSchemes {
		forms[i] = s.syntax()
	}
	return strings.Join(forms, " or ")
}

func (a Addr) String() string {
	switch a.Scheme {
	case Unix:
		return (&url.URL{Scheme: string(Unix), Path: a.Path}).String()
	case TCP:
		if a.NodeID != "" {
			return "tcp://" + a.NodeID + "@" + a.Host
		}
		return "tcp://" + a.Host
	case Vsock:
		return fmt.Sprintf("vsock://%d:%d", a.CID, a.Port)
	}
	return ""
}

// Local reports whether a stays on this machine: a unix socket, or tcp to
// a loopback address or localhost. Other host names do not count, since
// what they resolve to can change.
func (a Addr) Local() bool {
	switch a.Scheme {
	case Unix:
		return true
	case TCP:
		host, _, err := net.SplitHostPort(a.Host)
		if err != nil {
			return false
		}
		if strings.EqualFold(host, "localhost") {
			return true
		}
		ip, err := netip.ParseAddr(host)
		return err == nil && ip.Unmap().IsLoopback()
	}
	return false
}

// Dial connects to a. When a's scheme is Secret it performs the
// SecretConnection handshake with identity as our key and, when a.NodeID
// is set, refuses any other peer; identity may be nil otherwise.
func Dial(ctx context.Context, a Addr, identity ed25519.PrivateKey) (net.Conn, error) {
	if a.Scheme.Secret() && identity == nil {
		return nil, fmt.Errorf("transport: %s requires an identity key for SecretConnection", a.Scheme)
	}
	c, err := DialPlain(ctx, a)
	if err != nil || !a.Scheme.Secret() {
		return c, err
	}
	return Secure(ctx, c, identity, a.NodeID)
}

// DialPlain connects to a without any handshake. The host's bridge
// reaches a tcp validator this way: the SecretConnection it carries runs
// between the enclave and the node.
func DialPlain(ctx context.Context, a Addr) (net.Conn, error) {
	var d net.Dialer
	switch a.Scheme {
	case Unix:
		return d.DialContext(ctx, "unix", a.Path)
	case TCP:
		return d.DialContext(ctx, "tcp", a.Host)
	case Vsock:
		return dialVsock(ctx, a.CID, a.Port)
	}
	return nil, fmt.Errorf("transport: %w: cannot dial %q", ErrAddress, a.String())
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
	// The deadline is set before a cancellation can cut it short, and the
	// cancellation is unhooked before the deadline is cleared.
	if err := c.SetDeadline(deadline); err != nil {
		c.Close()
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	sc, err := secretconn.Handshake(c, identity)
	if !stop() && err == nil {
		err = ctx.Err()
	}
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
	if base.Scheme == Unix {
		return Addr{Scheme: Unix, Path: fmt.Sprintf("%s/port-%d.sock", strings.TrimRight(base.Path, "/"), port)}
	}
	return Addr{Scheme: base.Scheme, CID: base.CID, Port: port, Host: base.Host}
}
