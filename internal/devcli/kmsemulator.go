package devcli

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/cli"
	"github.com/tmkms-nitro/tmkms-nitro/internal/localkms"
	"github.com/tmkms-nitro/tmkms-nitro/internal/softnsm"
)

// kmsEmulatorShutdown bounds how long requests in flight may finish after
// the command is interrupted.
const kmsEmulatorShutdown = 5 * time.Second

func runKMSEmulator(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "kms-emulator", "--data DIR [--listen ADDR] [--trust-root PEM ...]",
		"Serves a local AWS KMS (JSON 1.1 over TLS, SigV4, key policies, Nitro Recipient) for local mode,\n"+
			"keeping its TLS root, credentials and keys in DIR. Runs until interrupted.")
	listen := fs.String("listen", "127.0.0.1:8443", "TCP address to listen on")
	data := fs.String("data", "", "directory for the emulator's state (created with mode 0700)")
	region := fs.String("region", "us-east-1", "region of the key ARNs and the SigV4 scope")
	var roots, names kmsEmulatorList
	fs.Var(&roots, "trust-root", "attestation root to trust: a PEM file, or a software NSM CA directory (repeatable)")
	fs.Var(&names, "hostname", "extra DNS name or IP address for the TLS certificate (repeatable)")
	if err := cli.Parse(fs, args, 0); err != nil {
		return err
	}
	if *data == "" {
		return cli.WithHint(errors.New("kms-emulator: no --data directory given"), "pass a directory for its state, e.g. --data ./kms-data")
	}
	trusted, err := loadTrustRoots(roots)
	if err != nil {
		return err
	}
	srv, err := localkms.New(localkms.Config{
		Dir: *data, TrustedRoots: trusted, Hostnames: names, Region: *region,
		Logger: slog.New(slog.NewTextHandler(env.Stderr, nil)),
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return cli.WithHint(fmt.Errorf("kms-emulator: failed to listen: %w", err), "choose another address with --listen")
	}
	printKMSEmulator(env, srv, ln.Addr().String(), len(trusted))
	return serveUntilDone(ctx, srv, ln)
}

func printKMSEmulator(env *Env, srv *localkms.Server, addr string, roots int) {
	fmt.Fprintf(env.Stdout, "kms-emulator: serving AWS KMS (region %s) at https://%s\n", srv.Region(), addr)
	fmt.Fprintf(env.Stdout, "  TLS root:     %s\n", srv.RootFile())
	fmt.Fprintf(env.Stdout, "  credentials:  %s (principal %s)\n", srv.CredentialsFile(), srv.Credentials().Principal)
	fmt.Fprintf(env.Stdout, "  attestation roots trusted: %d\n", roots)
	if roots == 0 {
		fmt.Fprintf(env.Stdout, "  (requests with a Recipient are refused; pass --trust-root to accept them)\n")
	}
}

func serveUntilDone(ctx context.Context, srv *localkms.Server, ln net.Listener) error {
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), kmsEmulatorShutdown)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	return <-done
}

// loadTrustRoots reads each --trust-root: a directory is a software NSM CA
// saved with softnsm.CA.Save, a file holds one or more PEM certificates.
func loadTrustRoots(paths []string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, p := range paths {
		certs, err := loadTrustRoot(p)
		if err != nil {
			return nil, cli.WithHint(err, "--trust-root takes a PEM certificate file or a directory holding "+softnsm.CARootFile)
		}
		out = append(out, certs...)
	}
	return out, nil
}

func loadTrustRoot(path string) ([]*x509.Certificate, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		root, err := softnsm.LoadCARoot(path)
		if err != nil {
			return nil, fmt.Errorf("kms-emulator: failed to load trust root: %w", err)
		}
		return []*x509.Certificate{root}, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kms-emulator: failed to read trust root: %w", err)
	}
	var certs []*x509.Certificate
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("kms-emulator: failed to parse a certificate in %s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("kms-emulator: no PEM certificate in %s", path)
	}
	return certs, nil
}

// kmsEmulatorList is a repeatable string flag.
type kmsEmulatorList []string

func (l *kmsEmulatorList) String() string { return strings.Join(*l, ",") }

func (l *kmsEmulatorList) Set(s string) error {
	if s == "" {
		return errors.New("empty value")
	}
	*l = append(*l, s)
	return nil
}
