package cli

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/attestation"
)

func runVerifyAttestation(_ context.Context, env *Env, args []string) error {
	fs := newFlags(env, "verify-attestation", "[--at RFC3339|unix-ms] [--root PEM] FILE",
		"Verifies a Nitro Enclave attestation document (raw CBOR or base64, as `init` prints it) against the\n"+
			"AWS Nitro root, and prints its module id, PCRs, public key and user data. Exits non-zero on any failure.")
	at := fs.String("at", "", "verify as of this time (RFC 3339 or unix milliseconds) instead of now")
	root := fs.String("root", "", "PEM file of a root to trust instead of the AWS Nitro root (local mode)")
	if err := parse(fs, args, 1); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	doc, err := readDocument(fs.Arg(0))
	if err != nil {
		return err
	}
	var opts attestation.Options
	if *at != "" {
		if opts.CurrentTime, err = parseTime(*at); err != nil {
			return err
		}
	}
	if *root != "" {
		if opts.Roots, err = readCerts(*root); err != nil {
			return err
		}
	}
	d, err := attestation.Verify(doc, opts)
	if err != nil {
		if errors.Is(err, attestation.ErrExpired) && *at == "" {
			return withHint(err, "documents are valid for about 3 hours; to check an old one, pass --at with its timestamp")
		}
		return err
	}
	printDocument(env, d)
	return nil
}

func readDocument(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if dec, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(raw))); err == nil {
		return dec, nil
	}
	return raw, nil
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	var ms int64
	if _, err := fmt.Sscan(s, &ms); err == nil {
		return time.UnixMilli(ms), nil
	}
	return time.Time{}, fmt.Errorf("--at %q is neither RFC 3339 nor unix milliseconds", s)
}

func readCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return certs, nil
}

func printDocument(env *Env, d *attestation.Document) {
	w := env.Stdout
	fmt.Fprintf(w, "verified: attestation document signed by a certificate chain to the trusted root\n")
	fmt.Fprintf(w, "module_id: %s\ntimestamp: %s\n", d.ModuleID, d.Timestamp.UTC().Format(time.RFC3339Nano))
	idx := make([]int, 0, len(d.PCRs))
	for i := range d.PCRs {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for _, i := range idx {
		fmt.Fprintf(w, "PCR%d: %s\n", i, hex.EncodeToString(d.PCRs[i]))
	}
	fmt.Fprintf(w, "public_key: %s\nuser_data: %s\nnonce: %s\n", b64(d.PublicKey), b64(d.UserData), b64(d.Nonce))
}

func b64(b []byte) string {
	if b == nil {
		return "(none)"
	}
	return base64.StdEncoding.EncodeToString(b)
}
