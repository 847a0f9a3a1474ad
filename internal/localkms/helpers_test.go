package localkms_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"

	"github.com/tmkms-nitro/tmkms-nitro/internal/localkms"
)

type server struct {
	*localkms.Server
	addr string
}

// start runs a local KMS on dir until the test ends.
func start(t *testing.T, cfg localkms.Config) *server {
	t.Helper()
	srv, err := localkms.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return &server{srv, ln.Addr().String()}
}

func (s *server) httpClient(t *testing.T) *http.Client {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.RootPEM()) {
		t.Fatal("root PEM does not parse")
	}
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", s.addr)
	}
	return &http.Client{Transport: &http.Transport{DialContext: dial, TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// sdk returns the unmodified SDK client for the server, signing with the
// instance role's credentials.
func (s *server) sdk(t *testing.T) *awskms.Client { return s.sdkAs(t, s.Credentials()) }

// admin is sdk with the administrator's credentials.
func (s *server) admin(t *testing.T) *awskms.Client { return s.sdkAs(t, s.AdminCredentials()) }

func (s *server) sdkAs(t *testing.T, c localkms.Credentials) *awskms.Client {
	return awskms.New(awskms.Options{
		Region: s.Region(), BaseEndpoint: aws.String("https://localhost"),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return c.AWS(), nil
		}),
		HTTPClient: s.httpClient(t), RetryMaxAttempts: 1,
	})
}

// signed builds a request for op signed with the instance role's
// credentials at time at.
func (s *server) signed(t *testing.T, op string, body []byte, at time.Time) *http.Request {
	t.Helper()
	return s.signedAs(t, s.Credentials(), op, body, at)
}

func (s *server) signedAs(t *testing.T, c localkms.Credentials, op string, body []byte, at time.Time) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "https://localhost/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Target", "TrentService."+op)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(t.Context(), c.AWS(), req, hex.EncodeToString(sum[:]), "kms", s.Region(), at); err != nil {
		t.Fatal(err)
	}
	return req
}

// awsError is the error body the server returns.
type awsError struct {
	Type    string `json:"__type"`
	Message string `json:"message"`
}

func (s *server) send(t *testing.T, req *http.Request) (int, awsError) {
	t.Helper()
	resp, err := s.httpClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var e awsError
	if resp.StatusCode != http.StatusOK {
		if err := json.Unmarshal(data, &e); err != nil {
			t.Fatalf("error body %q: %v", data, err)
		}
	}
	return resp.StatusCode, e
}

// createKey creates a key with the given policy ("" for the default), as
// the administrator.
func (s *server) createKey(t *testing.T, policy string) string {
	t.Helper()
	in := &awskms.CreateKeyInput{}
	if policy != "" {
		in.Policy = aws.String(policy)
	}
	out, err := s.admin(t).CreateKey(t.Context(), in)
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

func wantAPIError(t *testing.T, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != code {
		t.Fatalf("error = %v, want %s", err, code)
	}
}
