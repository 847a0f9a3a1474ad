package softnsm_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/tmkms-nitro/tmkms-nitro/internal/attestation"
	"github.com/tmkms-nitro/tmkms-nitro/internal/nsm"
	"github.com/tmkms-nitro/tmkms-nitro/internal/softnsm"
)

// The enclave's client (nsm.Socket) against the server, over a real unix
// socket: the documents verify against the CA, and PCR0 measures the
// calling process, here this test binary.
func TestServer(t *testing.T) {
	ca, err := softnsm.NewCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pcr4 := bytes.Repeat([]byte{4}, nsm.PCRSize)
	path := filepath.Join(t.TempDir(), "nsm")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &softnsm.Server{CA: ca, ModuleID: "i-0000000000local-enc0000000000000001", PCRs: map[int][]byte{4: pcr4}}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	wantPCR0, err := softnsm.PCR0File(exe)
	if err != nil {
		t.Fatal(err)
	}
	dev := nsm.Socket(path)
	doc, err := dev.Attest(ctx, nsm.AttestRequest{Nonce: []byte("nonce"), UserData: []byte("user")})
	if err != nil {
		t.Fatalf("Attest: %v", err)
	}
	d, err := attestation.Verify(doc, attestation.Options{Roots: []*x509.Certificate{ca.Root()}})
	if err != nil {
		t.Fatalf("document does not verify against the CA: %v", err)
	}
	if !bytes.Equal(d.PCRs[0], wantPCR0) || !bytes.Equal(d.PCRs[4], pcr4) || string(d.Nonce) != "nonce" || string(d.UserData) != "user" {
		t.Errorf("document: PCR0 %x (want %x), PCR4 %x, nonce %q, user data %q", d.PCRs[0], wantPCR0, d.PCRs[4], d.Nonce, d.UserData)
	}
	if got, err := dev.DescribePCR(ctx, 0); err != nil || !bytes.Equal(got, wantPCR0) {
		t.Errorf("DescribePCR(0) = %x, %v", got, err)
	}
	if b, err := dev.Random(ctx, 1000); err != nil || len(b) != 1000 || bytes.Equal(b[:32], make([]byte, 32)) {
		t.Errorf("Random(1000) = %d bytes, %v", len(b), err)
	}

	// What the device refuses, the server refuses, with the device's codes.
	for name, req := range map[string]any{
		"unknown unit":    "Describe",
		"unknown variant": map[string]any{"ExtendPCR": map[string]any{"index": 16}},
		"unknown field":   map[string]any{"DescribePCR": map[string]any{"index": 1, "x": 2}},
		"two variants":    map[string]any{"DescribePCR": map[string]any{"index": 1}, "Attestation": map[string]any{}},
		"bad index":       map[string]any{"DescribePCR": map[string]any{"index": 99}},
	} {
		b, _ := cbor.Marshal(req)
		resp := rawCall(t, path, b)
		var m map[string]string
		if err := cbor.Unmarshal(resp, &m); err != nil || m["Error"] == "" {
			t.Errorf("%s: answer %x is not an error", name, resp)
		}
	}
}

func rawCall(t *testing.T, path string, req []byte) []byte {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := nsm.WriteFrame(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := nsm.ReadFrame(c, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// A client that sends an oversized frame is dropped, not served.
func TestServerRefusesOversizedFrame(t *testing.T) {
	ca, err := softnsm.NewCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "nsm")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go (&softnsm.Server{CA: ca}).Serve(ctx, ln)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	nsm.WriteFrame(c, make([]byte, nsm.MaxRequestSize+1))
	if _, err := nsm.ReadFrame(c, 1<<16); err == nil {
		t.Fatal("the server answered an oversized request")
	}
	var de *nsm.DeviceError
	if _, err := nsm.Socket(filepath.Join(t.TempDir(), "none")).Random(ctx, 8); err == nil || errors.As(err, &de) {
		t.Fatalf("a missing socket: %v", err)
	}
}
