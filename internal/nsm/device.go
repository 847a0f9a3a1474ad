package nsm

import (
	"context"
	"fmt"
	"sync"
)

// DevicePath is where the Nitro Secure Module appears inside an enclave.
const DevicePath = "/dev/nsm"

// Device is the NSM behind /dev/nsm. It is safe for concurrent use; requests
// are serialised because they share one pair of kernel buffers.
type Device struct {
	mu sync.Mutex
	t  transport
}

var _ NSM = (*Device)(nil)

// transport carries one CBOR request to the NSM and returns its response.
// The ioctl is the only real implementation; tests fake it.
type transport interface {
	roundTrip(req []byte) ([]byte, error)
	close() error
}

// Open opens /dev/nsm. It fails when not running inside a Nitro Enclave.
// The raw ioctl needs CAP_SYS_ADMIN.
func Open() (*Device, error) {
	t, err := openTransport(DevicePath)
	if err != nil {
		return nil, err
	}
	return &Device{t: t}, nil
}

// Close releases the device.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.t.close()
}

// Attest asks the NSM for an attestation document.
func (d *Device) Attest(ctx context.Context, req AttestRequest) ([]byte, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	b, err := encodeAttestation(req)
	if err != nil {
		return nil, err
	}
	resp, err := d.call(ctx, b)
	if err != nil {
		return nil, err
	}
	return decodeAttestation(resp)
}

// Random reads n bytes of NSM entropy, asking as many times as needed: the
// NSM returns a fixed amount (256 bytes on current hardware) per request.
func (d *Device) Random(ctx context.Context, n int) ([]byte, error) {
	if err := CheckRandomSize(n); err != nil {
		return nil, err
	}
	req, err := encodeGetRandom()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, n)
	for len(out) < n {
		resp, err := d.call(ctx, req)
		if err != nil {
			return nil, err
		}
		chunk, err := decodeGetRandom(resp)
		if err != nil {
			return nil, err
		}
		if len(chunk) == 0 {
			return nil, fmt.Errorf("nsm: GetRandom returned no bytes")
		}
		out = append(out, chunk[:min(len(chunk), n-len(out))]...)
	}
	return out, nil
}

// DescribePCR reads PCR index.
func (d *Device) DescribePCR(ctx context.Context, index int) ([]byte, error) {
	req, err := encodeDescribePCR(index)
	if err != nil {
		return nil, err
	}
	resp, err := d.call(ctx, req)
	if err != nil {
		return nil, err
	}
	return decodeDescribePCR(resp)
}

// call checks ctx before each request: once in the kernel, a request runs
// to completion.
func (d *Device) call(ctx context.Context, req []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("nsm: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.t.roundTrip(req)
}
