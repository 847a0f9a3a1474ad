package enclave

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/nsm"
	"github.com/tmkms-nitro/tmkms-nitro/internal/transport"
)

// The host's CID as seen from an enclave.
const hostCID = 3

// Nitro returns the platform of a real enclave: vsock to the host (CID 3),
// /dev/nsm, and KMS through the host's vsock-proxy on port 8000, verified
// against the Amazon roots built into this binary.
func Nitro(log *slog.Logger) (Platform, error) {
	dev, err := nsm.Open()
	if err != nil {
		return Platform{}, err
	}
	ln, err := transport.Listen(transport.Addr{Scheme: transport.Vsock, Port: enclaveproto.ConfigPort})
	if err != nil {
		dev.Close()
		return Platform{}, fmt.Errorf("enclave: failed to listen on vsock port %d: %w", enclaveproto.ConfigPort, err)
	}
	return platform(ln, transport.Addr{Scheme: transport.Vsock, CID: hostCID}, dev, nil, "", log), nil
}

// Local layout under a local-mode directory, shared with the helper.
const (
	LocalEnclaveSockets = "sockets/enclave" // the enclave listens here
	LocalHostSockets    = "sockets/host"    // the helper listens here
	LocalNSMSocket      = "sockets/nsm"     // the helper's software NSM
	LocalNSMDir         = "nsm"             // the software NSM's CA
	LocalKMSDir         = "kms"             // the local KMS's data
	LocalKMSRootFile    = "kms/tls-root.pem"
	LocalInstanceID     = "i-0000000000local"
	LocalKMSEndpoint    = "https://localhost"
)

// Local returns the local-mode platform rooted at dir: unix sockets in
// place of vsock, the software NSM the helper serves on a socket in place
// of /dev/nsm, and the local KMS, reached through the helper's proxy,
// verified against the local KMS's own root. Nothing of the software NSM
// is linked into this program: it speaks the device's protocol either way.
func Local(dir string, log *slog.Logger) (Platform, error) {
	rootPEM, err := os.ReadFile(filepath.Join(dir, LocalKMSRootFile))
	if err != nil {
		return Platform{}, fmt.Errorf("enclave: local KMS root: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		return Platform{}, fmt.Errorf("enclave: %s holds no certificate", LocalKMSRootFile)
	}
	sockets := filepath.Join(dir, LocalEnclaveSockets)
	if err := os.MkdirAll(sockets, 0o700); err != nil {
		return Platform{}, err
	}
	ln, err := transport.Listen(transport.Port(transport.Addr{Scheme: transport.Unix, Path: sockets}, enclaveproto.ConfigPort))
	if err != nil {
		return Platform{}, err
	}
	host := transport.Addr{Scheme: transport.Unix, Path: filepath.Join(dir, LocalHostSockets)}
	return platform(ln, host, nsm.Socket(filepath.Join(dir, LocalNSMSocket)), roots, LocalKMSEndpoint, log), nil
}

func platform(ln net.Listener, host transport.Addr, m nsm.NSM, roots *x509.CertPool, endpoint string, log *slog.Logger) Platform {
	dialHost := func(ctx context.Context, port uint32) (net.Conn, error) {
		return transport.Dial(ctx, transport.Port(host, port), nil)
	}
	return Platform{
		Listen:   ln,
		DialHost: dialHost,
		NSM:      m,
		KMSDial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialHost(ctx, enclaveproto.KMSProxyPort)
		},
		KMSRoots:    roots,
		KMSEndpoint: endpoint,
		Log:         log,
	}
}
