package devcli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/tmkms-nitro/tmkms-nitro/internal/localkms"
	"github.com/tmkms-nitro/tmkms-nitro/internal/softnsm"
)

// kmsEmuOutput is a stdout that signals once the serving banner is out.
type kmsEmuOutput struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan struct{}
	once  sync.Once
}

func (o *kmsEmuOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, err := o.buf.Write(p)
	if strings.Contains(o.buf.String(), "attestation roots trusted") {
		o.once.Do(func() { close(o.ready) })
	}
	return n, err
}

func (o *kmsEmuOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

func TestKMSEmulatorServesUntilCancelled(t *testing.T) {
	dir := t.TempDir()
	ca, err := softnsm.NewCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	caDir := filepath.Join(dir, "nsm")
	if err := ca.Save(caDir); err != nil {
		t.Fatal(err)
	}
	out := &kmsEmuOutput{ready: make(chan struct{})}
	var stderr bytes.Buffer
	env := &Env{Stdout: out, Stderr: &kmsEmuSyncWriter{w: &stderr}, Getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	data := filepath.Join(dir, "kms")
	go func() {
		done <- runKMSEmulator(ctx, env, []string{"--listen", "127.0.0.1:0", "--data", data, "--trust-root", caDir})
	}()
	select {
	case <-out.ready:
	case err := <-done:
		t.Fatalf("kms-emulator exited early: %v\n%s", err, stderr.String())
	}
	addr := regexp.MustCompile(`at https://(\S+)`).FindStringSubmatch(out.String())
	if addr == nil || !strings.Contains(out.String(), filepath.Join(data, localkms.RootFile)) ||
		!strings.Contains(out.String(), "attestation roots trusted: 1") {
		t.Fatalf("banner:\n%s", out.String())
	}
	if _, err := kmsEmuClient(t, data, addr[1]).GenerateRandom(t.Context(), &awskms.GenerateRandomInput{NumberOfBytes: aws.Int32(8)}); err != nil {
		t.Fatalf("GenerateRandom: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("kms-emulator: %v", err)
	}
}

// kmsEmuClient is the SDK client an operator would configure from the
// files the emulator prints.
func kmsEmuClient(t *testing.T, data, addr string) *awskms.Client {
	t.Helper()
	rootPEM, err := os.ReadFile(filepath.Join(data, localkms.RootFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(rootPEM)
	credsJSON, err := os.ReadFile(filepath.Join(data, localkms.CredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	var c localkms.Credentials
	if err := json.Unmarshal(credsJSON, &c); err != nil {
		t.Fatal(err)
	}
	creds := c.AWS()
	return awskms.New(awskms.Options{
		Region: "us-east-1", BaseEndpoint: aws.String("https://" + addr),
		Credentials:      aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return creds, nil }),
		HTTPClient:       &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
		RetryMaxAttempts: 1,
	})
}

func TestKMSEmulatorRefusesBadFlags(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no data", []string{}, "no --data"},
		{"missing root", []string{"--data", dir, "--trust-root", filepath.Join(dir, "nope.pem")}, "failed to read trust root"},
		{"not a certificate", []string{"--data", dir, "--trust-root", notPEM}, "no PEM certificate"},
		{"address in use", []string{"--data", filepath.Join(dir, "kms"), "--listen", busy.Addr().String()}, "failed to listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			env := &Env{Stdout: &out, Stderr: &out}
			code := Main(t.Context(), append([]string{"kms-emulator"}, tt.args...), env)
			if code != 1 || !strings.Contains(out.String(), tt.want) || !strings.Contains(out.String(), prog+": hint: ") {
				t.Fatalf("exit status %d, output %q; want 1 and %q with a hint", code, out.String(), tt.want)
			}
		})
	}
}

type kmsEmuSyncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *kmsEmuSyncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
