package softnsm_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/attestation"
	"github.com/tmkms-nitro/tmkms-nitro/internal/nsm"
	"github.com/tmkms-nitro/tmkms-nitro/internal/pcr"
	"github.com/tmkms-nitro/tmkms-nitro/internal/softnsm"
)

var _ nsm.NSM = (*softnsm.Software)(nil)

// clock is an adjustable time source for the software NSM.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

var t0 = time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)

func verifyWith(root *x509.Certificate, at time.Time, doc []byte) (*attestation.Document, error) {
	return attestation.Verify(doc, attestation.Options{Roots: []*x509.Certificate{root}, CurrentTime: at})
}

func TestSoftwareAttest(t *testing.T) {
	clk := &clock{t: t0}
	pcr0, pcr3, pcr4 := softnsm.PCR0([]byte("binary")), pcrSlice(pcr.PCR3("arn:aws:iam::1:role/r")), pcrSlice(pcr.PCR4("i-1"))
	soft, err := softnsm.NewSoftware(&softnsm.SoftwareConfig{
		ModuleID: "i-1-enc2",
		PCRs:     map[int][]byte{0: pcr0, 3: pcr3, 4: pcr4},
		Now:      clk.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	req := nsm.AttestRequest{PublicKey: []byte("spki"), UserData: []byte("user"), Nonce: []byte("nonce")}
	raw, err := soft.Attest(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := verifyWith(soft.Root(), t0, raw)
	if err != nil {
		t.Fatal(err)
	}
	if doc.ModuleID != "i-1-enc2" || !doc.Timestamp.Equal(t0) || string(doc.PublicKey) != "spki" ||
		string(doc.UserData) != "user" || string(doc.Nonce) != "nonce" || len(doc.PCRs) != 16 {
		t.Errorf("unexpected document %+v", doc)
	}
	for i := range 32 {
		got, err := soft.DescribePCR(t.Context(), i)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, nsm.PCRSize)
		switch i {
		case 0:
			want = pcr0
		case 3:
			want = pcr3
		case 4:
			want = pcr4
		}
		if !bytes.Equal(got, want) || (i < 16 && !bytes.Equal(doc.PCRs[i], want)) {
			t.Errorf("PCR%d: DescribePCR %x, document %x, want %x", i, got, doc.PCRs[i], want)
		}
	}
	// The leaf lives three hours, like AWS's.
	if _, err := verifyWith(soft.Root(), t0.Add(2*time.Hour+59*time.Minute), raw); err != nil {
		t.Errorf("within the leaf's lifetime: %v", err)
	}
	if _, err := verifyWith(soft.Root(), t0.Add(3*time.Hour+time.Second), raw); !errors.Is(err, attestation.ErrExpired) {
		t.Errorf("after the leaf's lifetime: %v, want ErrExpired", err)
	}
	if _, err := attestation.Verify(raw, attestation.Options{CurrentTime: t0}); !errors.Is(err, attestation.ErrUntrustedChain) {
		t.Errorf("with the AWS root: %v, want ErrUntrustedChain", err)
	}
}

func TestSoftwareDefaults(t *testing.T) {
	soft, err := softnsm.NewSoftware(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^i-[0-9a-f]{17}-enc[0-9a-f]{16}$`).MatchString(soft.ModuleID()) {
		t.Errorf("module id %q", soft.ModuleID())
	}
	doc := emptyDocument(t, soft)
	for i, v := range doc.PCRs {
		if !bytes.Equal(v, make([]byte, nsm.PCRSize)) {
			t.Errorf("PCR%d = %x, want zeros", i, v)
		}
	}
	if doc.PublicKey != nil || doc.UserData != nil || doc.Nonce != nil {
		t.Errorf("absent fields present: %+v", doc)
	}
}

func TestSoftwareRenewsIntermediate(t *testing.T) {
	clk := &clock{t: t0}
	soft, err := softnsm.NewSoftware(&softnsm.SoftwareConfig{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	first, err := soft.Attest(t.Context(), nsm.AttestRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for range 4 { // 60 days: past the 20-day intermediate, three times
		clk.advance(15 * 24 * time.Hour)
		doc, err := soft.Attest(t.Context(), nsm.AttestRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := verifyWith(soft.Root(), clk.now(), doc); err != nil {
			t.Fatalf("at %v: %v", clk.now(), err)
		}
	}
	if _, err := verifyWith(soft.Root(), clk.now(), first); !errors.Is(err, attestation.ErrExpired) {
		t.Errorf("old document: %v, want ErrExpired", err)
	}
}

func TestSoftwareRefuses(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for name, cfg := range map[string]*softnsm.SoftwareConfig{
		"PCR 16":         {PCRs: map[int][]byte{16: make([]byte, 48)}},
		"PCR -1":         {PCRs: map[int][]byte{-1: make([]byte, 48)}},
		"short PCR":      {PCRs: map[int][]byte{0: make([]byte, 32)}},
		"SHA-512 PCR":    {PCRs: map[int][]byte{0: make([]byte, 64)}},
		"nil PCR values": {PCRs: map[int][]byte{2: nil}},
	} {
		if s, err := softnsm.NewSoftware(cfg); err == nil {
			t.Errorf("%s: NewSoftware = %v, want an error", name, s)
		}
	}
	soft, err := softnsm.NewSoftware(nil)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() ([]byte, error){
		"user data too large": func() ([]byte, error) {
			return soft.Attest(t.Context(), nsm.AttestRequest{UserData: make([]byte, nsm.MaxAttestField+1)})
		},
		"attest cancelled": func() ([]byte, error) { return soft.Attest(cancelled, nsm.AttestRequest{}) },
		"random cancelled": func() ([]byte, error) { return soft.Random(cancelled, 1) },
		"PCR cancelled":    func() ([]byte, error) { return soft.DescribePCR(cancelled, 0) },
		"random negative":  func() ([]byte, error) { return soft.Random(t.Context(), -1) },
		"random too large": func() ([]byte, error) { return soft.Random(t.Context(), nsm.MaxRandom+1) },
		"PCR 32":           func() ([]byte, error) { return soft.DescribePCR(t.Context(), 32) },
		"PCR negative":     func() ([]byte, error) { return soft.DescribePCR(t.Context(), -1) },
	}
	for name, call := range calls {
		if b, err := call(); err == nil || b != nil {
			t.Errorf("%s: got %x, %v; want an error", name, b, err)
		}
	}
}

func TestSoftwareRandom(t *testing.T) {
	soft, err := softnsm.NewSoftware(nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := soft.Random(t.Context(), 32)
	if err != nil || len(a) != 32 {
		t.Fatalf("Random = %x, %v", a, err)
	}
	b, _ := soft.Random(t.Context(), 32)
	if bytes.Equal(a, b) {
		t.Error("two random reads are equal")
	}
	if z, err := soft.Random(t.Context(), 0); err != nil || len(z) != 0 {
		t.Errorf("Random(0) = %x, %v", z, err)
	}
}

func TestSoftwareConcurrentAttest(t *testing.T) {
	soft, err := softnsm.NewSoftware(nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			raw, err := soft.Attest(t.Context(), nsm.AttestRequest{Nonce: []byte{byte(i)}})
			if err == nil {
				_, err = attestation.Verify(raw, attestation.Options{Roots: []*x509.Certificate{soft.Root()}})
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func pcrSlice(v [pcr.Size]byte) []byte { return v[:] }
