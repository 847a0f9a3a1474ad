package anchor

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
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
	b      *Bundle
	key    []byte // <prefix><chain>/decision
	hc     *http.Client
	tr     *http.Transport
	byAddr map[string]int

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
	for i, e := range b.Endpoints {
		hp, _ := hostPort(e)
		byAddr[hp] = i
	}
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
		},
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	return &Client{b: b, key: []byte(b.Prefix + chainID + "/decision"), tr: tr, hc: &http.Client{Transport: tr}, byAddr: byAddr}, nil
}

// Key is the record's key in etcd.
func (c *Client) Key() string { return string(c.key) }

// Close drops idle connections.
func (c *Client) Close() { c.tr.CloseIdleConnections() }

// CompareAndSwap writes record if the record's revision is still rev (0:
// absent; negative: never, only read), in one linearizable transaction; if
// it did not, it returns the record stored and its revision.
func (c *Client) CompareAndSwap(ctx context.Context, rev int64, record []byte) (bool, []byte, int64, error) {
	req := txnRequest{
		Compare: []compare{{Result: "EQUAL", Target: "MOD", Key: c.key, ModRevision: strconv.FormatInt(rev, 10)}},
		Success: []requestOp{{RequestPut: &putRequest{Key: c.key, Value: record}}},
		Failure: []requestOp{{RequestRange: &rangeRequest{Key: c.key}}},
	}
	var resp txnResponse
	if err := c.call(ctx, "/v3/kv/txn", req, &resp); err != nil {
		return false, nil, 0, err
	}
	if resp.Header == nil {
		return false, nil, 0, fmt.Errorf("%w: a transaction answer without header", ErrUnavailable)
	}
	if resp.Succeeded {
		r, err := resp.Header.Revision.int()
		return true, nil, r, err
	}
	if len(resp.Responses) != 1 || resp.Responses[0].ResponseRange == nil {
		return false, nil, 0, fmt.Errorf("%w: a failed transaction without its read", ErrUnavailable)
	}
	kvs := resp.Responses[0].ResponseRange.Kvs
	if len(kvs) == 0 {
		return false, nil, 0, nil
	}
	r, err := kvs[0].ModRevision.int()
	return false, kvs[0].Value, r, err
}

// call posts one request, trying each member in turn from the last that
// worked, and authenticating to it when the bundle names an etcd user.
func (c *Client) call(ctx context.Context, path string, in, out any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	var errs []error
	first := c.cur
	for n := range len(c.b.Endpoints) {
		i := (first + n) % len(c.b.Endpoints)
		if i != c.cur {
			c.token = "" // a simple token is valid on its member only
		}
		c.cur = i
		err := c.callMember(ctx, i, path, body, out)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
}

func (c *Client) callMember(ctx context.Context, i int, path string, body []byte, out any) error {
	for attempt := 0; ; attempt++ {
		if c.b.Username != "" && c.token == "" {
			if err := c.authenticate(ctx, i); err != nil {
				return err
			}
		}
		err := c.post(ctx, i, path, c.token, body, out)
		var ge *gatewayError
		if attempt == 0 && errors.As(err, &ge) && ge.Code == codeUnauthenticated && c.b.Username != "" {
			c.token = "" // expired or from a restarted member: once more
			continue
		}
		return err
	}
}

func (c *Client) authenticate(ctx context.Context, i int) error {
	body, err := json.Marshal(map[string]string{"name": c.b.Username, "password": c.b.Password})
	if err != nil {
		return err
	}
	var resp struct {
		Token string `json:"token"`
	}
	if err := c.post(ctx, i, "/v3/auth/authenticate", "", body, &resp); err != nil {
		return fmt.Errorf("etcd authentication as %q: %w", c.b.Username, err)
	}
	if resp.Token == "" {
		return fmt.Errorf("etcd authentication as %q: no token (is auth enabled in etcd?)", c.b.Username)
	}
	c.token = resp.Token
	return nil
}

func (c *Client) post(ctx context.Context, i int, path, token string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.b.Endpoints[i]+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("member %d: %w", i, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return fmt.Errorf("member %d: %w", i, err)
	}
	if len(data) > maxResponse {
		return fmt.Errorf("member %d: answer larger than %d bytes", i, maxResponse)
	}
	if resp.StatusCode != http.StatusOK {
		ge := &gatewayError{Status: resp.StatusCode}
		if json.Unmarshal(data, ge) != nil || ge.Message == "" {
			ge.Message = string(data[:min(len(data), 200)])
		}
		return fmt.Errorf("member %d: %w", i, ge)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("member %d: malformed answer: %v", i, err)
	}
	return nil
}

// gRPC status codes the gateway reports.
const codeUnauthenticated = 16

type gatewayError struct {
	Status  int    `json:"-"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *gatewayError) Error() string {
	return fmt.Sprintf("etcd answered HTTP %d (code %d): %s", e.Status, e.Code, e.Message)
}

// The gateway's JSON (protojson of etcdserverpb: proto field names, int64
// as strings, bytes as base64).
type (
	txnRequest struct {
		Compare []compare   `json:"compare"`
		Success []requestOp `json:"success"`
		Failure []requestOp `json:"failure"`
	}
	compare struct {
		Result      string `json:"result"`
		Target      string `json:"target"`
		Key         []byte `json:"key"`
		ModRevision string `json:"mod_revision"`
	}
	requestOp struct {
		RequestPut   *putRequest   `json:"request_put,omitempty"`
		RequestRange *rangeRequest `json:"request_range,omitempty"`
	}
	putRequest struct {
		Key   []byte `json:"key"`
		Value []byte `json:"value"`
	}
	rangeRequest struct {
		Key []byte `json:"key"`
	}
	txnResponse struct {
		Header    *header      `json:"header"`
		Succeeded bool         `json:"succeeded"`
		Responses []responseOp `json:"responses"`
	}
	header struct {
		Revision int64s `json:"revision"`
	}
	responseOp struct {
		ResponseRange *struct {
			Kvs []struct {
				Key         []byte `json:"key"`
				Value       []byte `json:"value"`
				ModRevision int64s `json:"mod_revision"`
			} `json:"kvs"`
		} `json:"response_range"`
	}
)

// int64s is an int64 as protojson writes it: a decimal string (a number
// is accepted too); absent means 0.
type int64s string

func (s *int64s) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("want an int64, got %.40s", b)
		}
		str = n.String()
	}
	*s = int64s(str)
	return nil
}

func (s int64s) int() (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(string(s), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: revision %q", ErrUnavailable, string(s))
	}
	return n, nil
}
