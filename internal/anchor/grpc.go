package anchor

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// A unary gRPC call, by hand, over net/http's HTTP/2 client: a POST to
// /<service>/<method> whose request and response bodies are each one
// length-prefixed message, with the call's status in the trailers
// (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md).
// etcd serves it on its TLS client port next to its JSON gateway, which
// itself makes this call to etcd on the client's behalf: asking directly
// saves that hop.

// The etcd methods the anchor calls.
const (
	methodTxn          = "/etcdserverpb.KV/Txn"
	methodAuthenticate = "/etcdserverpb.Auth/Authenticate"
)

// frameHeader is a gRPC message's prefix: a compressed flag and a 4-byte
// big-endian length.
const frameHeader = 5

// gRPC status codes the anchor tells apart.
const (
	codeOK               = 0
	codeInvalidArgument  = 3
	codePermissionDenied = 7
	codeUnauthenticated  = 16
)

// frame is msg as a gRPC request body: uncompressed, length-prefixed.
func frame(msg []byte) []byte {
	b := make([]byte, frameHeader, frameHeader+len(msg))
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	return append(b, msg...)
}

// unframe returns the one message of a unary call's response body.
func unframe(body []byte) ([]byte, error) {
	if len(body) < frameHeader {
		return nil, fmt.Errorf("gRPC response of %d bytes, shorter than a message header", len(body))
	}
	if body[0] != 0 {
		return nil, fmt.Errorf("gRPC response message with flags %#x (compression was not asked for)", body[0])
	}
	n := binary.BigEndian.Uint32(body[1:frameHeader])
	if n > maxResponse {
		return nil, fmt.Errorf("gRPC response message of %d bytes, more than %d", n, maxResponse)
	}
	if rest := uint64(len(body) - frameHeader); rest != uint64(n) {
		return nil, fmt.Errorf("gRPC response body holds %d bytes after the header of a %d-byte message (want exactly one message)", rest, n)
	}
	return body[frameHeader:], nil
}

// rpcError is a call that etcd answered with a gRPC status other than OK.
type rpcError struct {
	Code    int
	Message string
}

func (e *rpcError) Error() string {
	return fmt.Sprintf("etcd refused the call: %s (gRPC code %d): %s", codeName(e.Code), e.Code, e.Message)
}

// staleToken tells whether the call failed because of the auth token
// (expired, issued by a member that restarted, or issued before the
// auth store changed), so that a new token may fix it: the cases etcd's
// own client re-authenticates on.
func (e *rpcError) staleToken() bool {
	switch {
	case e.Code == codeUnauthenticated:
		return true
	case e.Code == codeInvalidArgument:
		return strings.HasSuffix(e.Message, "revision of auth store is old") ||
			strings.HasSuffix(e.Message, "user name is empty")
	}
	return strings.HasSuffix(e.Message, "invalid auth token")
}

func codeName(c int) string {
	names := [...]string{"OK", "canceled", "unknown", "invalid argument", "deadline exceeded", "not found",
		"already exists", "permission denied", "resource exhausted", "failed precondition", "aborted",
		"out of range", "unimplemented", "internal", "unavailable", "data loss", "unauthenticated"}
	if c >= 0 && c < len(names) {
		return names[c]
	}
	return "unknown code"
}

// unary makes one gRPC call to member i and returns the response message.
// token, if set, is sent as etcd's "token" metadata, as clientv3 does.
func (c *Client) unary(ctx context.Context, i int, method, token string, msg []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.urls[i]+method, bytes.NewReader(frame(msg)))
	if err != nil {
		return nil, err
	}
	req.Header = http.Header{"Content-Type": {"application/grpc"}, "Te": {"trailers"}}
	if token != "" {
		req.Header["Token"] = []string{token}
	}
	if d, ok := ctx.Deadline(); ok {
		// So that etcd gives up on a call the anchor gave up on.
		req.Header["Grpc-Timeout"] = []string{grpcTimeout(time.Until(d))}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := checkHeader(resp); err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, frameHeader+maxResponse+1))
	if err != nil {
		return nil, err
	}
	if len(body) > frameHeader+maxResponse {
		return nil, fmt.Errorf("gRPC response larger than %d bytes", maxResponse)
	}
	// The status is only final once the body was read to its end: it is
	// in the trailers, or in the headers of a response without body.
	if err := status(resp); err != nil {
		return nil, err
	}
	return unframe(body)
}

// checkHeader refuses a response that is not gRPC's, e.g. from a proxy or
// an etcd without gRPC on that port.
func checkHeader(resp *http.Response) error {
	if resp.ProtoMajor != 2 {
		return fmt.Errorf("answer over %s, not HTTP/2", resp.Proto)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("answer with HTTP status %d, not a gRPC call's 200", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/grpc") {
		return fmt.Errorf("answer of content type %q, not gRPC", ct)
	}
	return nil
}

// status is the call's gRPC status: nil if OK, an *rpcError otherwise.
func status(resp *http.Response) error {
	h := resp.Trailer
	if h.Get("Grpc-Status") == "" {
		h = resp.Header // a "trailers-only" response
	}
	s := h.Get("Grpc-Status")
	if s == "" {
		return errors.New("gRPC response without status (cut short?)")
	}
	code, err := strconv.Atoi(s)
	if err != nil || code < 0 {
		return fmt.Errorf("gRPC response with status %.20q", s)
	}
	if code == codeOK {
		return nil
	}
	return &rpcError{Code: code, Message: statusMessage(h.Get("Grpc-Message"))}
}

// statusMessage decodes grpc-message, which is percent-encoded (the raw
// text is kept if it is not), for an error message: bounded, and without
// control characters.
func statusMessage(m string) string {
	if len(m) > 512 {
		m = m[:512]
	}
	if d, err := url.PathUnescape(m); err == nil {
		m = d
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsGraphic(r) {
			return r
		}
		return '?'
	}, strings.ToValidUTF8(m, "?"))
}

// grpcTimeout is d as a grpc-timeout header value: at most 8 digits and a
// unit; a passed deadline is sent as the shortest timeout.
func grpcTimeout(d time.Duration) string {
	ms := d.Milliseconds()
	switch {
	case ms < 1:
		return "1m"
	case ms < 1e8:
		return strconv.FormatInt(ms, 10) + "m"
	}
	return strconv.FormatInt(min(int64(d/time.Second), 1e8-1), 10) + "S"
}
