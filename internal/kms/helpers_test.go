package kms_test

import (
	"context"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/tmkms-nitro/tmkms-nitro/internal/kms"
	"github.com/tmkms-nitro/tmkms-nitro/internal/kmspolicy"
	"github.com/tmkms-nitro/tmkms-nitro/internal/localkms"
	"github.com/tmkms-nitro/tmkms-nitro/internal/softnsm"
)

// localEndpoint is the name clients address: the local KMS's certificate
// covers it, and the dialer connects to the real port whatever it says.
const localEndpoint = "https://localhost"

// fixture is a local KMS on a temporary directory, a software NSM CA it
// trusts, and a key whose policy pins the "good" enclave's PCR0 and PCR4.
type fixture struct {
	dir    string
	ca     *softnsm.CA
	srv    *localkms.Server
	addr   string
	keyARN string
	pcr0   []byte
	pcr4   []byte
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ca, err := softnsm.NewCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{dir: t.TempDir(), ca: ca, pcr0: softnsm.PCR0([]byte("enclave binary v1")), pcr4: sha384("instance")}
	f.start(t)
	f.keyARN = f.createKey(t)
	return f
}

// start runs a server on f.dir; t.Cleanup stops it.
func (f *fixture) start(t *testing.T) {
	t.Helper()
	srv, err := localkms.New(localkms.Config{Dir: f.dir, TrustedRoots: []*x509.Certificate{f.ca.Root()}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	f.srv, f.addr = srv, ln.Addr().String()
	t.Cleanup(func() { f.stop(t, srv, done) })
}

func (f *fixture) stop(t *testing.T, srv *localkms.Server, done chan error) {
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func (f *fixture) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", f.addr)
}

func (f *fixture) roots(t *testing.T) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(f.srv.RootPEM()) {
		t.Fatal("server root PEM does not parse")
	}
	return pool
}

// client returns an internal/kms client for the local KMS signing with creds.
func (f *fixture) client(t *testing.T, creds aws.Credentials) *kms.Client {
	return f.clientDialing(t, creds, f.dial)
}

// clientDialing is client reaching the local KMS through dial.
func (f *fixture) clientDialing(t *testing.T, creds aws.Credentials, dial func(context.Context, string, string) (net.Conn, error)) *kms.Client {
	t.Helper()
	c := kms.NewCredentials()
	if err := c.Set(creds); err != nil {
		t.Fatal(err)
	}
	cl, err := kms.New(kms.Config{
		Region: f.srv.Region(), Endpoint: localEndpoint, Dial: dial, Roots: f.roots(t), Credentials: c, MaxAttempts: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func (f *fixture) goodClient(t *testing.T) *kms.Client {
	return f.client(t, f.srv.Credentials().AWS())
}

// adminClient is the operator's: the only one allowed kms:Encrypt (the
// import ceremony).
func (f *fixture) adminClient(t *testing.T) *kms.Client {
	return f.client(t, f.srv.AdminCredentials().AWS())
}

// admin returns a plain SDK client, for the calls an operator makes.
func (f *fixture) admin(t *testing.T) *awskms.Client {
	t.Helper()
	tr := &http.Transport{DialContext: f.dial, TLSClientConfig: &tls.Config{RootCAs: f.roots(t)}}
	return awskms.New(awskms.Options{
		Region: f.srv.Region(), BaseEndpoint: aws.String(localEndpoint),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return f.srv.AdminCredentials().AWS(), nil
		}),
		HTTPClient: &http.Client{Transport: tr}, RetryMaxAttempts: 1,
	})
}

func (f *fixture) createKey(t *testing.T) string {
	t.Helper()
	policy, err := kmspolicy.Seed(kmspolicy.Params{
		AccountID: "111122223333", RoleARN: f.srv.Credentials().RoleARN,
		PCR0: []string{hex.EncodeToString(f.pcr0)}, PCR4: []string{hex.EncodeToString(f.pcr4)},
	})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := kmspolicy.Marshal(policy)
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.admin(t).CreateKey(t.Context(), &awskms.CreateKeyInput{Policy: aws.String(string(doc))})
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

// enclave returns a recipient attested by a software NSM with the given
// PCR0 (and the fixture's PCR4), signed by ca.
func (f *fixture) enclave(t *testing.T, ca *softnsm.CA, pcr0 []byte) *kms.Recipient {
	t.Helper()
	m, err := softnsm.NewSoftware(&softnsm.SoftwareConfig{CA: ca, PCRs: map[int][]byte{0: pcr0, 4: f.pcr4}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := kms.NewRecipient(t.Context(), m, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func sha384(s string) []byte {
	sum := sha512.Sum384([]byte(s))
	return sum[:]
}

// wantKind fails unless err is a *kms.Error of kind want.
func wantKind(t *testing.T, err, want error) *kms.Error {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
	var ke *kms.Error
	if !errors.As(err, &ke) {
		t.Fatalf("error %v is not a *kms.Error", err)
	}
	return ke
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
