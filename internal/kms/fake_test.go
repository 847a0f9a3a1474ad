package kms_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/tmkms-nitro/tmkms-nitro/internal/cms"
	"github.com/tmkms-nitro/tmkms-nitro/internal/kms"
	"github.com/tmkms-nitro/tmkms-nitro/internal/softnsm"
)

const fakeKeyARN = "arn:aws:kms:us-east-1:111122223333:key/11111111-2222-4333-8444-555555555555"

// fakeKMS answers every request with body, as a hostile or broken KMS
// behind valid TLS would.
func fakeKMS(t *testing.T, body map[string]any) *kms.Client {
	t.Helper()
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(ts.Close)
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	c := kms.NewCredentials()
	if err := c.Set(aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}); err != nil {
		t.Fatal(err)
	}
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ts.Listener.Addr().String())
	}
	cl, err := kms.New(kms.Config{Region: "us-east-1", Endpoint: "https://example.com", Dial: dial, Roots: pool, Credentials: c, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func TestResponseChecks(t *testing.T) {
	m, err := softnsm.NewSoftware(nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := kms.NewRecipient(t.Context(), m, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	envelope, err := cms.Seal([]byte("attacker's seed"), &r.Key.PublicKey, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := kms.NewRecipient(t.Context(), m, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	otherEnvelope, err := cms.Seal([]byte("seed"), &other.Key.PublicKey, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		body map[string]any
		r    *kms.Recipient
		want error
	}{
		{"plaintext despite recipient", map[string]any{"KeyId": fakeKeyARN, "Plaintext": []byte("seed")}, r, kms.ErrBadResponse},
		{"both plaintext and envelope", map[string]any{"KeyId": fakeKeyARN, "Plaintext": []byte("seed"), "CiphertextForRecipient": envelope}, r, kms.ErrBadResponse},
		{"no envelope", map[string]any{"KeyId": fakeKeyARN}, r, kms.ErrBadResponse},
		{"envelope for another recipient", map[string]any{"KeyId": fakeKeyARN, "CiphertextForRecipient": otherEnvelope}, r, kms.ErrBadResponse},
		{"envelope without recipient", map[string]any{"KeyId": fakeKeyARN, "CiphertextForRecipient": envelope}, nil, kms.ErrBadResponse},
		{"other key", map[string]any{"KeyId": fakeKeyARN[:len(fakeKeyARN)-1] + "6", "CiphertextForRecipient": envelope}, r, kms.ErrWrongKey},
		{"no key", map[string]any{"CiphertextForRecipient": envelope}, r, kms.ErrWrongKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fakeKMS(t, tt.body).Decrypt(t.Context(), []byte("blob"), fakeKeyARN, nil, tt.r)
			if got != nil {
				t.Fatal("refused response returned a plaintext")
			}
			wantKind(t, err, tt.want)
		})
	}
}

func TestRequestChecks(t *testing.T) {
	cl := fakeKMS(t, map[string]any{"KeyId": fakeKeyARN, "Plaintext": []byte("seed")})
	for _, keyID := range []string{"", "alias/validator", "arn:aws:kms:us-east-1:111122223333:alias/validator", "arn:aws:s3:::bucket"} {
		_, err := cl.Decrypt(t.Context(), []byte("blob"), keyID, nil, nil)
		wantKind(t, err, kms.ErrInvalidRequest)
	}
	_, err := cl.Decrypt(t.Context(), []byte("blob"), fakeKeyARN, nil, &kms.Recipient{})
	wantKind(t, err, kms.ErrInvalidRequest)
	_, err = cl.GenerateRandom(t.Context(), 0, nil)
	wantKind(t, err, kms.ErrInvalidRequest)
}

func TestDialFailureIsNetworkError(t *testing.T) {
	c := kms.NewCredentials()
	if err := c.Set(aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}); err != nil {
		t.Fatal(err)
	}
	dial := func(context.Context, string, string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: "vsock", Err: errRefused{}}
	}
	cl, err := kms.New(kms.Config{Region: "us-east-1", Dial: dial, Credentials: c, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = cl.Encrypt(t.Context(), fakeKeyARN, []byte("x"), nil)
	wantKind(t, err, kms.ErrNetwork)
}

type errRefused struct{}

func (errRefused) Error() string { return "connection refused" }
