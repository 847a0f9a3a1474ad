package kms

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

var (
	// ErrNoCredentials: no credentials have been Set yet.
	ErrNoCredentials = errors.New("kms: no credentials")
	// ErrCredentialsExpired: the credentials' expiry has passed (checked
	// before sending) or KMS refused them as expired.
	ErrCredentialsExpired = errors.New("kms: credentials expired")
)

// Credentials holds the AWS credentials requests are signed with. The host
// pushes them and replaces them before they expire; Set may be called at any
// time, from any goroutine, and the next request uses the new values.
//
// It implements aws.CredentialsProvider without caching, so that a Set is
// never hidden behind a cached copy.
type Credentials struct {
	now func() time.Time // nil means time.Now

	mu    sync.RWMutex
	creds aws.Credentials
}

// NewCredentials returns an empty provider; requests fail with
// ErrNoCredentials until Set is called. The zero Credentials is the same.
func NewCredentials() *Credentials { return &Credentials{} }

func (c *Credentials) expired(creds aws.Credentials) bool {
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	return creds.CanExpire && !now().Before(creds.Expires)
}

// Set replaces the credentials. It refuses credentials without an access
// key ID or secret, and ones that have already expired.
func (c *Credentials) Set(creds aws.Credentials) error {
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return errors.New("kms: credentials need an access key ID and a secret access key")
	}
	if c.expired(creds) {
		return fmt.Errorf("%w: at %s", ErrCredentialsExpired, creds.Expires.UTC().Format(time.RFC3339))
	}
	creds.Source = "tmkms-nitro host"
	c.mu.Lock()
	c.creds = creds
	c.mu.Unlock()
	return nil
}

// Retrieve implements aws.CredentialsProvider.
func (c *Credentials) Retrieve(context.Context) (aws.Credentials, error) {
	c.mu.RLock()
	creds := c.creds
	c.mu.RUnlock()
	if creds.AccessKeyID == "" {
		return aws.Credentials{}, ErrNoCredentials
	}
	if c.expired(creds) {
		return aws.Credentials{}, fmt.Errorf("%w: at %s; the host must push fresh ones", ErrCredentialsExpired, creds.Expires.UTC().Format(time.RFC3339))
	}
	return creds, nil
}

// String and GoString keep the secret out of logs.
func (c *Credentials) String() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return fmt.Sprintf("kms.Credentials{AccessKeyID:%q secret:redacted}", c.creds.AccessKeyID)
}

func (c *Credentials) GoString() string { return c.String() }
