package anchor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// ErrUnavailable marks an anchor that could not be asked: no member
// reachable, no quorum, refused credentials. Nothing may be signed.
var ErrUnavailable = errors.New("anchor unavailable")

// maxResponse bounds an answer: a decision record is at most a few KiB.
const maxResponse = 64 << 10

// Dialer reaches endpoint i of the bundle (through the host's relay).
type Dialer func(ctx context.Context, i int) (net.Conn, error)

// Client is one chain's record in the anchor. It implements ha.Store.
type Client struct {
	b    *Bundle
	key  []byte   // <prefix><chain>/decision
	urls []string // https://host:port of each member, without path
	hc   *http.Client
	tr   *http.Transport

	mu    sync.Mutex
	token string // etcd auth token of the member at index cur
	cur   int    // the member used last; others are tried when it fails
}

// New returns the client of chainID's record. dial reaches endpoint i; TLS
// runs over it from here, verified against the bundle's CA.
func New(b *Bundle, chainID string, dial Dialer) (*Client, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	roots, _ := b.roots()
	cert, _ := b.certificate()
	byAddr := map[string]int{}
	urls := make([]string, len(b.Endpoints))
	for i, e := range b.Endpoints {
		hp, _ := hostPort(e)
		byAddr[hp] = i
		urls[i] = "https://" + hp
	}
	// gRPC needs HTTP/2, which net/http speaks over TLS once ALPN agreed
	// on "h2"; HTTP/1 is left out so that a server without it fails
	// plainly instead of answering something else.
	var protocols http.Protocols
	protocols.SetHTTP2(true)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			i, ok := byAddr[addr]
			if !ok {
				return nil, fmt.Errorf("anchor: %s is not an endpoint of the bundle", addr)
			}
			return dial(ctx, i)
		},
		TLSClientConfig: &tls.Config{
			RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
			NextProtos: []string{"h2"},
		},
		Protocols:           &protocols,
		TLSHandshakeTimeout: 5 * time.Second,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
		HTTP2: &http.HTTP2Config{
			// A member that vanished without closing the connection (a
			// relay or host gone) is found by a ping, not by a hung call.
			SendPingTimeout: 10 * time.Second,
			PingTimeout:     5 * time.Second,
		},
	}
	return &Client{b: b, key: []byte(b.Prefix + chainID + "/decision"), urls: urls, tr: tr, hc: &http.Client{Transport: tr}}, nil
}

// Key is the record's key in etcd.
func (c *Client) Key() string { return string(c.key) }

// Close drops idle connections.
func (c *Client) Close() { c.tr.CloseIdleConnections() }

// CompareAndSwap writes record if the record's revision is still rev (0:
// absent; negative: never, only read), in one linearizable transaction; if
// it did not, it returns the record stored and its revision.
func (c *Client) CompareAndSwap(ctx context.Context, rev int64, record []byte) (bool, []byte, int64, error) {
	var resp *txnResponse
	err := c.call(ctx, methodTxn, encodeTxnRequest(c.key, record, rev), func(out []byte) (err error) {
		resp, err = decodeTxnResponse(out)
		return err
	})
	if err != nil {
		return false, nil, 0, err
	}
	if !resp.hasHeader {
		return false, nil, 0, fmt.Errorf("%w: a transaction answer without header", ErrUnavailable)
	}
	if resp.succeeded {
		return true, nil, resp.revision, nil
	}
	if len(resp.responses) != 1 || resp.responses[0].rng == nil {
		return false, nil, 0, fmt.Errorf("%w: a failed transaction without its read", ErrUnavailable)
	}
	kvs := resp.responses[0].rng.kvs
	if len(kvs) == 0 {
		return false, nil, 0, nil
	}
	return false, kvs[0].value, kvs[0].modRevision, nil
}

// call makes one gRPC call and hands the answer to decode, trying each
// member in turn from the last that worked (a member whose answer does not
// decode is one that failed), and authenticating to it when the bundle
// names an etcd user.
func (c *Client) call(ctx context.Context, method string, msg []byte, decode func([]byte) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	first := c.cur
	for n := range len(c.b.Endpoints) {
		i := (first + n) % len(c.b.Endpoints)
		if i != c.cur {
			c.token = "" // a simple token is valid on its member only
		}
		c.cur = i
		out, err := c.callMember(ctx, i, method, msg)
		if err == nil {
			if err = decode(out); err == nil {
				return nil
			}
		}
		errs = append(errs, fmt.Errorf("member %d: %w", i, err))
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
}

func (c *Client) callMember(ctx context.Context, i int, method string, msg []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		if c.b.Username != "" && c.token == "" {
			if err := c.authenticate(ctx, i); err != nil {
				return nil, err
			}
		}
		out, err := c.unary(ctx, i, method, c.token, msg)
		var re *rpcError
		if attempt == 0 && errors.As(err, &re) && re.staleToken() && c.b.Username != "" {
			c.token = "" // expired or from a restarted member: once more
			continue
		}
		return out, err
	}
}

func (c *Client) authenticate(ctx context.Context, i int) error {
	out, err := c.unary(ctx, i, methodAuthenticate, "", encodeAuthenticateRequest(c.b.Username, c.b.Password))
	if err != nil {
		return fmt.Errorf("etcd authentication as %q: %w", c.b.Username, err)
	}
	token, err := decodeAuthenticateResponse(out)
	if err != nil {
		return fmt.Errorf("etcd authentication as %q: %w", c.b.Username, err)
	}
	if token == "" {
		return fmt.Errorf("etcd authentication as %q: no token (is auth enabled in etcd?)", c.b.Username)
	}
	if !validToken(token) {
		return fmt.Errorf("etcd authentication as %q: a token that cannot be sent as a header", c.b.Username)
	}
	c.token = token
	return nil
}

// validToken tells whether token can be a header value: etcd's tokens
// (simple or JWT) are printable ASCII.
func validToken(token string) bool {
	for _, r := range []byte(token) {
		if r < 0x20 || r > 0x7e {
			return false
		}
	}
	return len(token) <= 4096
}
