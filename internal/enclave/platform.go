package enclave

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/tmkms-nitro/tmkms-nitro/internal/nsm"
	"github.com/tmkms-nitro/tmkms-nitro/internal/pcr"
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
	ln, err := transport.Listen(transport.Addr{Scheme: "vsock", Port: DefaultConfigPort})
	if err != nil {
		dev.Close()
		return Platform{}, fmt.Errorf("enclave: failed to listen on vsock port %d: %w", DefaultConfigPort, err)
	}
	return platform(ln, transport.Addr{Scheme: "vsock", CID: hostCID}, dev, nil, "", log), nil
}

// Local layout under a local-mode directory, shared with the helper.
const (
	LocalEnclaveSockets = "sockets/enclave" // the enclave listens here
	LocalHostSockets    = "sockets/host"    // the helper listens here
	LocalNSMDir         = "nsm"             // the software NSM's CA
	LocalKMSDir         = "kms"             // the local KMS's data
	LocalKMSRootFile    = "kms/tls-root.pem"
	LocalInstanceID     = "i-0000000000local"
	LocalKMSEndpoint    = "https://localhost"
)

// Local returns the local-mode platform rooted at dir: unix sockets in
// place of vsock, a software NSM whose PCR0 measures this very binary (so
// a changed binary is refused by a key policy pinning the old PCR0, as on
// Nitro), and the local KMS, reached through the helper's proxy, verified
// against the local KMS's own root.
func Local(dir string, log *slog.Logger) (Platform, error) {
	ca, err := nsm.LoadCA(filepath.Join(dir, LocalNSMDir))
	if err != nil {
		return Platform{}, err
	}
	pcrs, err := LocalPCRs()
	if err != nil {
		return Platform{}, err
	}
	soft, err := nsm.NewSoftware(&nsm.SoftwareConfig{CA: ca, ModuleID: LocalInstanceID + "-enc0000000000000001", PCRs: pcrs})
	if err != nil {
		return Platform{}, err
	}
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
	ln, err := transport.Listen(transport.Port(transport.Addr{Scheme: "unix", Path: sockets}, DefaultConfigPort))
	if err != nil {
		return Platform{}, err
	}
	host := transport.Addr{Scheme: "unix", Path: filepath.Join(dir, LocalHostSockets)}
	return platform(ln, host, soft, roots, LocalKMSEndpoint, log), nil
}

// LocalPCRs are the measurements the software NSM reports for the running
// binary: PCR0 over the executable, PCR4 of the local "instance".
func LocalPCRs() (map[int][]byte, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	pcr0, err := nsm.PCR0File(exe)
	if err != nil {
		return nil, err
	}
	pcr4 := pcr.PCR4(LocalInstanceID)
	return map[int][]byte{0: pcr0, 4: pcr4[:]}, nil
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
			return dialHost(ctx, DefaultKMSPort)
		},
		KMSRoots:    roots,
		KMSEndpoint: endpoint,
		Log:         log,
	}
}
