//go:build linux

package nsm

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

func TestIoctlNumber(t *testing.T) {
	if size := unsafe.Sizeof(rawMessage{}); size != 32 {
		t.Errorf("struct nsm_raw is %d bytes, want 32", size)
	}
	if ioctlRaw != 0xC0200A00 {
		t.Errorf("NSM_IOCTL_RAW = %#x, want 0xC0200A00", ioctlRaw)
	}
}

func TestOpenMissingDevice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nsm")
	tr, err := openTransport(path)
	if tr != nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "not inside a Nitro Enclave") {
		t.Fatalf("openTransport = %v, %v", tr, err)
	}
	if _, err := os.Stat(DevicePath); err == nil {
		return // inside an enclave; TestIntegrationDevice covers Open
	}
	if d, err := Open(); d != nil || !strings.Contains(err.Error(), DevicePath) {
		t.Fatalf("Open = %v, %v; want an error naming %s", d, err, DevicePath)
	}
}

// TestIoctlPath drives the real syscall path against /dev/null, which
// rejects the NSM ioctl: the error must surface, not a response.
func TestIoctlPath(t *testing.T) {
	tr, err := openTransport(os.DevNull)
	if err != nil {
		t.Skipf("cannot open %s: %v", os.DevNull, err)
	}
	req, err := encodeGetRandom()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.roundTrip(req)
	if resp != nil || !errors.Is(err, syscall.ENOTTY) {
		t.Errorf("roundTrip = %x, %v; want ENOTTY", resp, err)
	}
	if _, err := tr.roundTrip(make([]byte, maxRequestSize+1)); err == nil {
		t.Error("oversized request accepted")
	}
	if err := tr.close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.roundTrip(req); err == nil {
		t.Error("request after close succeeded")
	}
}

// TestIntegrationDevice runs only inside a Nitro Enclave.
func TestIntegrationDevice(t *testing.T) {
	if _, err := os.Stat(DevicePath); err != nil {
		t.Skipf("no %s: run inside a Nitro Enclave, as root, to test the device", DevicePath)
	}
	d, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if b, err := d.Random(t.Context(), 300); err != nil || len(b) != 300 {
		t.Errorf("Random = %d bytes, %v", len(b), err)
	}
	if pcr, err := d.DescribePCR(t.Context(), 0); err != nil || len(pcr) != PCRSize {
		t.Errorf("DescribePCR = %x, %v", pcr, err)
	}
	if doc, err := d.Attest(t.Context(), AttestRequest{Nonce: []byte("integration")}); err != nil || len(doc) == 0 {
		t.Errorf("Attest = %d bytes, %v", len(doc), err)
	}
}
