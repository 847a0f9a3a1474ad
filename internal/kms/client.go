package kms

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

const (
	defaultTimeout = 30 * time.Second
	handshakeLimit = 10 * time.Second
)

// Config configures New.
type Config struct {
	// Region is the KMS region, e.g. "us-east-1". Required.
	Region string
	// Endpoint is the URL requests are addressed to: its host is the TLS
	// server name and the SigV4 host. Empty means
	// https://kms.<Region>.amazonaws.com; local mode passes the local KMS's
	// name, e.g. https://localhost:8443.
	Endpoint string
	// Dial opens the connection, whatever the endpoint's address: a vsock
	// to the host's proxy in production. Required.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Roots verify the server's certificate. Nil means AmazonRoots(); the
	// system pool is never used.
	Roots *x509.CertPool
	// Credentials sign requests, normally a *Credentials the host keeps
	// fresh. Required.
	Credentials aws.CredentialsProvider
	// Timeout bounds each HTTP attempt: 30s if zero.
	Timeout time.Duration
	// MaxAttempts bounds the SDK's retries of throttled and transient
	// failures: the SDK default (3) if zero.
	MaxAttempts int
}

// Client calls KMS. It is safe for concurrent use.
type Client struct {
	api    *kms.Client
	hc     *http.Client
	region string
}

// New returns a client for cfg. It does no I/O.
func New(cfg Config) (*Client, error) {
	if cfg.Region == "" || cfg.Dial == nil || cfg.Credentials == nil {
		return nil, errors.New("kms: config needs a region, a dialer and credentials")
	}
	endpoint, host, err := endpointOf(cfg)
	if err != nil {
		return nil, err
	}
	roots := cfg.Roots
	if roots == nil {
		if roots, err = AmazonRoots(); err != nil {
			return nil, err
		}
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = defaultTimeout
	}
	hc := httpClient(cfg.Dial, roots, host, timeout)
	api := kms.New(kms.Options{
		Region:           cfg.Region,
		BaseEndpoint:     aws.String(endpoint),
		Credentials:      cfg.Credentials,
		HTTPClient:       hc,
		RetryMaxAttempts: cfg.MaxAttempts,
		HTTPSignerV4:     uncachedSigner{},
	})
	return &Client{api: api, hc: hc, region: cfg.Region}, nil
}

// Close closes the client's idle connections, and with them the
// goroutines that keep them: the enclave makes a client per request from
// the host, and nothing else would close them before they time out.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// endpointOf returns the endpoint URL and the host name TLS must verify.
func endpointOf(cfg Config) (string, string, error) {
	if cfg.Endpoint == "" {
		host := "kms." + cfg.Region + ".amazonaws.com"
		return "https://" + host, host, nil
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" || (u.Path != "" && u.Path != "/") ||
		u.RawQuery != "" || u.User != nil {
		return "", "", fmt.Errorf("kms: endpoint %q is not of the form https://host[:port]", cfg.Endpoint)
	}
	return "https://" + u.Host, u.Hostname(), nil
}

// httpClient sends every request over dial, verifying TLS for host against
// roots only. No proxy from the environment, no system roots.
func httpClient(dial func(context.Context, string, string) (net.Conn, error), roots *x509.CertPool, host string, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:       nil,
		DialContext: dial,
		TLSClientConfig: &tls.Config{
			RootCAs:    roots,
			ServerName: host,
			MinVersion: tls.VersionTLS12,
		},
		TLSHandshakeTimeout:   handshakeLimit,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       time.Minute,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		// KMS never redirects; following one would only send the signed
		// request somewhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// uncachedSigner derives the SigV4 signing key afresh for every request.
// The SDK's signer caches it by access key ID alone, so credentials Set
// with the same key ID and a new secret would keep being signed with the
// old secret until midnight UTC.
type uncachedSigner struct{}

func (uncachedSigner) SignHTTP(ctx context.Context, creds aws.Credentials, r *http.Request, payloadHash, service, region string, at time.Time, optFns ...func(*v4.SignerOptions)) error {
	return v4.NewSigner().SignHTTP(ctx, creds, r, payloadHash, service, region, at, optFns...)
}
