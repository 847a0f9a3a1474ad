package kms_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/tmkms-nitro/tmkms-nitro/internal/kms"
	"github.com/tmkms-nitro/tmkms-nitro/internal/kmspolicy"
	"github.com/tmkms-nitro/tmkms-nitro/internal/softnsm"
)

var chainCtx = map[string]string{"chain_id": "test-chain", "purpose": "consensus-key"}

func seed(t *testing.T) []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// sealed encrypts a fresh seed with the fixture's key and returns both.
func (f *fixture) sealed(t *testing.T) (plaintext, blob []byte) {
	t.Helper()
	pt := seed(t)
	blob, _, err := f.adminClient(t).Encrypt(t.Context(), f.keyARN, pt, chainCtx)
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	return pt, blob
}

func TestDecryptWithRecipient(t *testing.T) {
	f := newFixture(t)
	pt, blob := f.sealed(t)
	r := f.enclave(t, f.ca, f.pcr0)
	got, err := f.goodClient(t).Decrypt(t.Context(), blob, f.keyARN, chainCtx, r)
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if !bytes.Equal(got, pt) {
		t.Fatal("Decrypt returned another seed")
	}
}

func TestDecryptByKeyID(t *testing.T) {
	f := newFixture(t)
	pt, blob := f.sealed(t)
	id := f.keyARN[strings.LastIndex(f.keyARN, "/")+1:]
	got, err := f.goodClient(t).Decrypt(t.Context(), blob, id, chainCtx, f.enclave(t, f.ca, f.pcr0))
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Decrypt by key ID: %v", err)
	}
}

func TestDecryptSurvivesRestart(t *testing.T) {
	f := newFixture(t)
	pt, blob := f.sealed(t)
	if err := f.srv.Close(); err != nil {
		t.Fatal(err)
	}
	f.start(t)
	got, err := f.goodClient(t).Decrypt(t.Context(), blob, f.keyARN, chainCtx, f.enclave(t, f.ca, f.pcr0))
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Decrypt after restart: %v", err)
	}
}

func TestDecryptDenied(t *testing.T) {
	f := newFixture(t)
	_, blob := f.sealed(t)
	tests := []struct {
		name      string
		recipient *kms.Recipient
		wantSid   string
	}{
		{"other PCR0", f.enclave(t, f.ca, softnsm.PCR0([]byte("enclave binary v2"))), kmspolicy.DenySid(kmspolicy.KeyPCR(0))},
		{"no recipient", nil, kmspolicy.DenySid(kmspolicy.KeyPCR(0))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.goodClient(t).Decrypt(t.Context(), blob, f.keyARN, chainCtx, tt.recipient)
			if got != nil {
				t.Fatal("denied Decrypt returned a plaintext")
			}
			ke := wantKind(t, err, kms.ErrAccessDenied)
			if ke.Code != "AccessDeniedException" || !strings.Contains(ke.Message, "explicit deny") ||
				!strings.Contains(err.Error(), tt.wantSid) || !strings.Contains(err.Error(), "kms:Decrypt") {
				t.Fatalf("denial does not name the statement %q: %v", tt.wantSid, err)
			}
		})
	}
}

func TestDecryptRefused(t *testing.T) {
	f := newFixture(t)
	_, blob := f.sealed(t)
	other, err := f.admin(t).CreateKey(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := softnsm.NewCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	good := f.enclave(t, f.ca, f.pcr0)
	corrupt := bytes.Clone(blob)
	corrupt[len(corrupt)-1] ^= 1
	tests := []struct {
		name     string
		blob     []byte
		keyID    string
		ctx      map[string]string
		r        *kms.Recipient
		wantKind error
		wantCode string
	}{
		{"wrong context", blob, f.keyARN, map[string]string{"chain_id": "other"}, good, kms.ErrInvalidCiphertext, "InvalidCiphertextException"},
		{"no context", blob, f.keyARN, nil, good, kms.ErrInvalidCiphertext, "InvalidCiphertextException"},
		{"corrupt blob", corrupt, f.keyARN, chainCtx, good, kms.ErrInvalidCiphertext, "InvalidCiphertextException"},
		{"other key", blob, aws.ToString(other.KeyMetadata.Arn), chainCtx, good, kms.ErrWrongKey, "IncorrectKeyException"},
		{"unknown key", blob, strings.Replace(f.keyARN, "key/", "key/0", 1)[:len(f.keyARN)], chainCtx, good, kms.ErrKeyUnavailable, "NotFoundException"},
		{"untrusted attestation", blob, f.keyARN, chainCtx, f.enclave(t, otherCA, f.pcr0), kms.ErrInvalidRequest, "ValidationException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.goodClient(t).Decrypt(t.Context(), tt.blob, tt.keyID, tt.ctx, tt.r)
			if ke := wantKind(t, err, tt.wantKind); ke.Code != tt.wantCode {
				t.Fatalf("code = %q, want %q (%v)", ke.Code, tt.wantCode, err)
			}
		})
	}
}

func TestAuthenticationRefused(t *testing.T) {
	f := newFixture(t)
	good := f.srv.Credentials().AWS()
	wrongSecret, unknownKey, wrongToken := good, good, good
	wrongSecret.SecretAccessKey += "x"
	unknownKey.AccessKeyID = "ASIAUNKNOWNUNKNOWN00"
	wrongToken.SessionToken = "bm90IHRoZSB0b2tlbg=="
	tests := []struct {
		name     string
		creds    aws.Credentials
		wantCode string
	}{
		{"wrong secret", wrongSecret, "InvalidSignatureException"},
		{"unknown access key", unknownKey, "UnrecognizedClientException"},
		{"wrong session token", wrongToken, "UnrecognizedClientException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := f.client(t, tt.creds).Encrypt(t.Context(), f.keyARN, seed(t), chainCtx)
			if ke := wantKind(t, err, kms.ErrAuthentication); ke.Code != tt.wantCode {
				t.Fatalf("code = %q, want %q", ke.Code, tt.wantCode)
			}
			if strings.Contains(err.Error(), tt.creds.SecretAccessKey) {
				t.Fatal("error contains the secret access key")
			}
		})
	}
}

func TestAmazonRootsRefuseLocalKMS(t *testing.T) {
	f := newFixture(t)
	c := kms.NewCredentials()
	if err := c.Set(f.srv.Credentials().AWS()); err != nil {
		t.Fatal(err)
	}
	cl, err := kms.New(kms.Config{Region: f.srv.Region(), Endpoint: localEndpoint, Dial: f.dial, Credentials: c, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = cl.Encrypt(t.Context(), f.keyARN, seed(t), chainCtx)
	wantKind(t, err, kms.ErrTLS)
}

func TestTLSServerNameIsTheEndpoint(t *testing.T) {
	f := newFixture(t)
	c := kms.NewCredentials()
	if err := c.Set(f.srv.Credentials().AWS()); err != nil {
		t.Fatal(err)
	}
	// The production endpoint name is not in the local certificate, even
	// though the dialer reaches the local KMS.
	cl, err := kms.New(kms.Config{Region: f.srv.Region(), Dial: f.dial, Roots: f.roots(t), Credentials: c, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = cl.Encrypt(t.Context(), f.keyARN, seed(t), chainCtx)
	wantKind(t, err, kms.ErrTLS)
}

func TestGenerateDataKeyWithRecipient(t *testing.T) {
	f := newFixture(t)
	cl := f.goodClient(t)
	r := f.enclave(t, f.ca, f.pcr0)
	pt, blob, _, err := cl.GenerateDataKey(t.Context(), f.keyARN, chainCtx, r)
	if err != nil {
		t.Fatalf("GenerateDataKey: %v", err)
	}
	got, err := cl.Decrypt(t.Context(), blob, f.keyARN, chainCtx, r)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Decrypt of the data key: %v", err)
	}
}

func TestGenerateRandom(t *testing.T) {
	f := newFixture(t)
	cl := f.goodClient(t)
	for _, r := range []*kms.Recipient{nil, f.enclave(t, f.ca, f.pcr0)} {
		b, err := cl.GenerateRandom(t.Context(), 48, r)
		if err != nil || len(b) != 48 {
			t.Fatalf("GenerateRandom(recipient %v) = %d bytes, %v", r != nil, len(b), err)
		}
	}
}

func TestExpiredCredentials(t *testing.T) {
	f := newFixture(t)
	creds := f.srv.Credentials().AWS()
	creds.CanExpire, creds.Expires = true, time.Now().Add(-time.Minute)
	c := kms.NewCredentials()
	if err := c.Set(creds); !errorsIs(err, kms.ErrCredentialsExpired) {
		t.Fatalf("Set(expired) = %v, want ErrCredentialsExpired", err)
	}
	cl, err := kms.New(kms.Config{Region: f.srv.Region(), Endpoint: localEndpoint, Dial: f.dial, Roots: f.roots(t), Credentials: c, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = cl.Encrypt(context.Background(), f.keyARN, seed(t), chainCtx)
	wantKind(t, err, kms.ErrNoCredentials)
}

func TestCredentialsReplacedAtRuntime(t *testing.T) {
	f := newFixture(t)
	stale := f.srv.AdminCredentials().AWS()
	stale.SecretAccessKey = "stale"
	c := kms.NewCredentials()
	if err := c.Set(stale); err != nil {
		t.Fatal(err)
	}
	cl, err := kms.New(kms.Config{Region: f.srv.Region(), Endpoint: localEndpoint, Dial: f.dial, Roots: f.roots(t), Credentials: c, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = cl.Encrypt(t.Context(), f.keyARN, seed(t), chainCtx)
	wantKind(t, err, kms.ErrAuthentication)
	if err := c.Set(f.srv.AdminCredentials().AWS()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cl.Encrypt(t.Context(), f.keyARN, seed(t), chainCtx); err != nil {
		t.Fatalf("Encrypt after Set: %v", err)
	}
}

// trackedConn records whether the client closed it.
type trackedConn struct {
	net.Conn
	closed atomic.Bool
}

func (c *trackedConn) Close() error { c.closed.Store(true); return c.Conn.Close() }

// TestCloseDropsIdleConnections: the connection a request leaves open for
// reuse is closed by Close, not left to time out.
func TestCloseDropsIdleConnections(t *testing.T) {
	f := newFixture(t)
	_, blob := f.sealed(t)
	var mu sync.Mutex
	var conns []*trackedConn
	cl := f.clientDialing(t, f.srv.Credentials().AWS(), func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := f.dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c}
		mu.Lock()
		conns = append(conns, tc)
		mu.Unlock()
		return tc, nil
	})
	if _, err := cl.Decrypt(t.Context(), blob, f.keyARN, chainCtx, f.enclave(t, f.ca, f.pcr0)); err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	open := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, c := range conns {
			if !c.closed.Load() {
				n++
			}
		}
		return n
	}
	if open() == 0 {
		t.Fatal("no connection kept for reuse: nothing for Close to do")
	}
	cl.Close()
	if n := open(); n != 0 {
		t.Fatalf("%d connections open after Close", n)
	}
}
