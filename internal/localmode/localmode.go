// Package localmode runs the whole system on one machine without Nitro
// hardware or AWS, through the same binaries and code paths: the enclave
// program as a child process with unix sockets in place of vsock and a
// software NSM, and a local KMS that speaks AWS's protocol and enforces a
// key policy pinning the enclave binary's PCR0.
//
// Layout of a local home (made by Init):
//
//	tmkms.toml                  the helper's configuration, as on EC2
//	secrets/secret.key, id.key  keys sealed by the local KMS from inside the enclave
//	state/priv_validator_state.json
//	pubkey.json                 the consensus public key, CometBFT JSON
//	nsm/                        the software NSM's CA (the local KMS trusts its root)
//	kms/                        the local KMS's keys, TLS root and issued credentials
//	sockets/                    unix sockets standing in for vsock ports
package localmode

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/softnsm"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclave"
	"github.com/tmkms-nitro/tmkms-nitro/internal/localkms"
	"github.com/tmkms-nitro/tmkms-nitro/internal/transport"
)

// KMS is a local KMS serving on the host's KMS proxy port, where the
// enclave's KMS client expects vsock-proxy.
type KMS struct {
	*localkms.Server
	sock string
}

// StartKMS serves the local KMS of home until Close.
func StartKMS(home string, log *slog.Logger) (*KMS, error) {
	ca, err := softnsm.LoadCARoot(filepath.Join(home, enclave.LocalNSMDir))
	if err != nil {
		return nil, err
	}
	srv, err := localkms.New(localkms.Config{Dir: filepath.Join(home, enclave.LocalKMSDir), TrustedRoots: []*x509.Certificate{ca}, Logger: log})
	if err != nil {
		return nil, err
	}
	hostDir := filepath.Join(home, enclave.LocalHostSockets)
	if err := os.MkdirAll(hostDir, 0o700); err != nil {
		return nil, err
	}
	addr := transport.Port(transport.Addr{Scheme: transport.Unix, Path: hostDir}, enclaveproto.KMSProxyPort)
	ln, err := transport.Listen(addr)
	if err != nil {
		return nil, fmt.Errorf("local KMS: %w", err)
	}
	go srv.Serve(ln)
	return &KMS{Server: srv, sock: addr.Path}, nil
}

// Admin returns an unmodified AWS SDK KMS client for the local KMS, signed
// with the administrator's credentials it issued (AdminCredentials), for
// administration: CreateKey, PutKeyPolicy, and Encrypt to import a key. Not
// the instance role's: a policy from kmspolicy.Seed denies the role those.
func (k *KMS) Admin() (*awskms.Client, error) {
	return k.Client(k.AdminCredentials().AWS()), nil
}

// Client returns an unmodified AWS SDK KMS client for the local KMS signing
// with creds: the instance role's (Credentials) is what a host holds.
func (k *KMS) Client(creds aws.Credentials) *awskms.Client {
	roots := x509.NewCertPool()
	roots.AddCert(k.Root())
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", k.sock)
		},
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12},
	}
	return awskms.New(awskms.Options{
		Region:       k.Region(),
		BaseEndpoint: aws.String(enclave.LocalKMSEndpoint),
		Credentials:  aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return creds, nil }),
		HTTPClient:   &http.Client{Transport: tr, Timeout: 30 * time.Second},
	})
}

// NSMRoot is the software NSM's root certificate of home: what
// verify-attestation --root trusts for local mode's documents.
func NSMRoot(home string) string {
	return filepath.Join(home, enclave.LocalNSMDir, softnsm.CARootFile)
}
