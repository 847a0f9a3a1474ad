package softnsm

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/localca"
	"github.com/tmkms-nitro/tmkms-nitro/internal/nsm"

	"github.com/tmkms-nitro/tmkms-nitro/internal/attestation"
)

// lockedPCRs is how many PCRs a real enclave locks at boot and therefore
// reports in every attestation document (0..15).
const lockedPCRs = 16

// SoftwareConfig configures NewSoftware. The zero value (or nil) gives a
// fresh in-memory CA, a random module ID, all-zero PCRs and the real clock.
type SoftwareConfig struct {
	// CA signs the documents. Persist it (CA.Save) when another process,
	// such as the local KMS, must trust it.
	CA *CA
	// ModuleID is the document's module_id, e.g. "i-…-enc…".
	ModuleID string
	// PCRs 0..15, 48 bytes each (see PCR0 here, PCR3 and PCR4 in package pcr). Unset ones are
	// zeros, as a real enclave reports for registers nothing measured.
	PCRs map[int][]byte
	// Now is the clock used for timestamps and certificate validity.
	Now func() time.Time
}

// Software is an NSM for local mode. Its documents have the real NSM's
// shape and verify with attestation.Verify only when its CA's root is
// passed explicitly; they never verify against the AWS root.
type Software struct {
	ca       *CA
	moduleID string
	pcrs     [lockedPCRs][]byte
	now      func() time.Time

	mu    sync.Mutex // guards the intermediate, renewed as it ages
	inter *localca.Cert
}

var _ nsm.NSM = (*Software)(nil)

// NewSoftware returns a software NSM; nil cfg means defaults.
func NewSoftware(cfg *SoftwareConfig) (*Software, error) {
	if cfg == nil {
		cfg = &SoftwareConfig{}
	}
	s := &Software{ca: cfg.CA, moduleID: cfg.ModuleID, now: cfg.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.setPCRs(cfg.PCRs); err != nil {
		return nil, err
	}
	if s.moduleID == "" {
		s.moduleID = randomModuleID()
	}
	if s.ca == nil {
		ca, err := NewCA(s.now())
		if err != nil {
			return nil, err
		}
		s.ca = ca
	}
	return s, nil
}

func (s *Software) setPCRs(pcrs map[int][]byte) error {
	for i := range s.pcrs {
		s.pcrs[i] = make([]byte, nsm.PCRSize)
	}
	for i, v := range pcrs {
		if i < 0 || i >= lockedPCRs {
			return fmt.Errorf("nsm: software PCR index %d out of range 0..%d", i, lockedPCRs-1)
		}
		if len(v) != nsm.PCRSize {
			return fmt.Errorf("nsm: software PCR%d is %d bytes, want %d", i, len(v), nsm.PCRSize)
		}
		s.pcrs[i] = append([]byte(nil), v...)
	}
	return nil
}

// randomModuleID imitates "i-<17 hex>-enc<16 hex>": an instance ID and an
// enclave ID, unique per start like a real enclave's.
func randomModuleID() string {
	b := make([]byte, 17)
	rand.Read(b) // never fails since Go 1.24
	h := hex.EncodeToString(b)
	return "i-" + h[:17] + "-enc" + h[17:33]
}

// Root returns the certificate verifiers must trust to accept this NSM's
// documents.
func (s *Software) Root() *x509.Certificate { return s.ca.Root() }

// ModuleID returns the module_id written into documents.
func (s *Software) ModuleID() string { return s.moduleID }

// String and GoString keep the CA key out of logs.
func (s *Software) String() string   { return fmt.Sprintf("softnsm.Software{module_id: %q}", s.moduleID) }
func (s *Software) GoString() string { return s.String() }

// Attest returns a document signed by a fresh leaf valid for three hours.
func (s *Software) Attest(ctx context.Context, req nsm.AttestRequest) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("nsm: %w", err)
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	now := s.now()
	inter, err := s.intermediate(now)
	if err != nil {
		return nil, err
	}
	leaf, err := issueLeaf(inter, s.moduleID, now)
	if err != nil {
		return nil, err
	}
	doc := &attestation.Document{
		ModuleID:    s.moduleID,
		Timestamp:   now,
		PCRs:        s.pcrMap(),
		Certificate: leaf.Certificate,
		PublicKey:   req.PublicKey,
		UserData:    req.UserData,
		Nonce:       req.Nonce,
	}
	b, err := attestation.Sign(doc, [][]byte{s.ca.Root().Raw, inter.Certificate.Raw}, leaf.Key)
	if err != nil {
		return nil, fmt.Errorf("nsm: failed to sign attestation document: %w", err)
	}
	return b, nil
}

// intermediate returns a CA certificate that outlives a leaf issued at
// now, issuing a new one when the current one is too old (or, with an
// injected clock, too young).
func (s *Software) intermediate(now time.Time) (*localca.Cert, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inter == nil || now.Before(s.inter.Certificate.NotBefore) || now.Add(leafLifetime).After(s.inter.Certificate.NotAfter) {
		inter, err := s.ca.issueIntermediate(now)
		if err != nil {
			return nil, err
		}
		s.inter = inter
	}
	return s.inter, nil
}

func (s *Software) pcrMap() map[int][]byte {
	m := make(map[int][]byte, lockedPCRs)
	for i, v := range s.pcrs {
		m[i] = v
	}
	return m
}

// Random reads n bytes from crypto/rand.
func (s *Software) Random(ctx context.Context, n int) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("nsm: %w", err)
	}
	if err := nsm.CheckRandomSize(n); err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("nsm: failed to read random bytes: %w", err)
	}
	return b, nil
}

// DescribePCR returns the configured value of PCRs 0..15 and zeros for the
// application PCRs 16..31, which the software NSM cannot extend.
func (s *Software) DescribePCR(ctx context.Context, index int) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("nsm: %w", err)
	}
	if err := nsm.CheckPCRIndex(index); err != nil {
		return nil, err
	}
	if index >= lockedPCRs {
		return make([]byte, nsm.PCRSize), nil
	}
	return append([]byte(nil), s.pcrs[index]...), nil
}
