package kms

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

func TestAmazonRoots(t *testing.T) {
	pool, err := AmazonRoots()
	if err != nil {
		t.Fatal(err)
	}
	for name, pin := range rootPins() {
		cert, err := pinnedCert(name, pin)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
			t.Fatalf("%s is not in the pool: %v", name, err)
		}
	}
	if _, err := pinnedCert("roots/amazon-root-ca-1.pem", strings.Repeat("00", 32)); !errors.Is(err, ErrRoots) {
		t.Fatalf("wrong pin: %v, want ErrRoots", err)
	}
}

func TestKeyMatches(t *testing.T) {
	const arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	const id = "1234abcd-12ab-34cd-56ef-1234567890ab"
	tests := []struct {
		ref, got string
		want     bool
	}{
		{arn, arn, true},
		{id, arn, true},
		{arn, strings.Replace(arn, "111122223333", "444455556666", 1), false},
		{id, strings.Replace(arn, "us-east-1", "eu-west-1", 1), false},
		{id, arn + "0", false},
		{id, "arn:aws:kms:us-east-1:111122223333:alias/" + id, false},
		{id, id, false},
		{arn, "", false},
	}
	for _, tt := range tests {
		if got := keyMatches(tt.ref, "us-east-1", tt.got); got != tt.want {
			t.Errorf("keyMatches(%q, %q) = %v, want %v", tt.ref, tt.got, got, tt.want)
		}
	}
}

func TestCredentials(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &Credentials{now: func() time.Time { return now }}
	if _, err := c.Retrieve(context.Background()); !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("empty: %v", err)
	}
	secret := "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	if err := c.Set(aws.Credentials{AccessKeyID: "ASIA1", SecretAccessKey: secret, CanExpire: true, Expires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Retrieve(context.Background()); err != nil || got.AccessKeyID != "ASIA1" {
		t.Fatalf("Retrieve = %v, %v", got.AccessKeyID, err)
	}
	now = now.Add(2 * time.Hour)
	if _, err := c.Retrieve(context.Background()); !errors.Is(err, ErrCredentialsExpired) {
		t.Fatalf("after expiry: %v", err)
	}
	if err := c.Set(aws.Credentials{AccessKeyID: "ASIA2"}); err == nil {
		t.Fatal("Set accepted credentials without a secret")
	}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v %#v", c, c)} {
		if strings.Contains(s, secret) {
			t.Fatalf("formatted credentials reveal the secret: %s", s)
		}
	}
}

func TestRecipientRedacted(t *testing.T) {
	r := &Recipient{AttestationDocument: []byte{1}}
	if s := fmt.Sprintf("%v %+v %#v", r, r, r); strings.Contains(s, "Key:<nil>") || !strings.Contains(s, "redacted") {
		t.Fatalf("recipient formats as %s", s)
	}
}

func TestEndpoint(t *testing.T) {
	tests := []struct {
		endpoint, wantURL, wantHost string
	}{
		{"", "https://kms.us-east-1.amazonaws.com", "kms.us-east-1.amazonaws.com"},
		{"https://localhost:8443", "https://localhost:8443", "localhost"},
		{"https://localhost/", "https://localhost", "localhost"},
	}
	for _, tt := range tests {
		u, h, err := endpointOf(Config{Region: "us-east-1", Endpoint: tt.endpoint})
		if err != nil || u != tt.wantURL || h != tt.wantHost {
			t.Errorf("endpointOf(%q) = %q, %q, %v", tt.endpoint, u, h, err)
		}
	}
	for _, bad := range []string{"http://localhost", "https://", "https://localhost/path", "https://u:p@localhost", "localhost:8443"} {
		if _, _, err := endpointOf(Config{Region: "us-east-1", Endpoint: bad}); err == nil {
			t.Errorf("endpointOf(%q) accepted", bad)
		}
	}
}

func TestExpiryCheckedBeforeSending(t *testing.T) {
	now := time.Now()
	c := &Credentials{now: func() time.Time { return now }}
	if err := c.Set(aws.Credentials{AccessKeyID: "ASIA1", SecretAccessKey: "s", CanExpire: true, Expires: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	dialed := false
	dial := func(context.Context, string, string) (net.Conn, error) {
		dialed = true
		return nil, errors.New("unreachable")
	}
	cl, err := New(Config{Region: "us-east-1", Dial: dial, Credentials: c, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	_, _, err = cl.Encrypt(context.Background(), "1234abcd-12ab-34cd-56ef-1234567890ab", []byte("x"), nil)
	if !errors.Is(err, ErrCredentialsExpired) || dialed {
		t.Fatalf("Encrypt with expired credentials = %v (dialed %v), want ErrCredentialsExpired before dialing", err, dialed)
	}
}
