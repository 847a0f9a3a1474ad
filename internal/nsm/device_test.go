package nsm

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// fakeTransport answers requests with handle and checks that Device never
// has two requests in flight.
type fakeTransport struct {
	t        *testing.T
	handle   func(req []byte) ([]byte, error)
	calls    atomic.Int32
	inFlight atomic.Int32
	closed   atomic.Bool
}

func (f *fakeTransport) roundTrip(req []byte) ([]byte, error) {
	if f.inFlight.Add(1) != 1 {
		f.t.Error("concurrent requests to the device")
	}
	defer f.inFlight.Add(-1)
	f.calls.Add(1)
	return f.handle(req)
}

func (f *fakeTransport) close() error {
	f.closed.Store(true)
	return nil
}

func fakeDevice(t *testing.T, handle func(req []byte) ([]byte, error)) (*Device, *fakeTransport) {
	ft := &fakeTransport{t: t, handle: handle}
	return &Device{t: ft}, ft
}

// expect answers resp to exactly the request want, both in hex.
func expect(t *testing.T, want, resp string) func([]byte) ([]byte, error) {
	return func(req []byte) ([]byte, error) {
		if !bytes.Equal(req, unhex(t, want)) {
			t.Errorf("request %x, want %s", req, want)
		}
		return unhex(t, resp), nil
	}
}

func TestDeviceAttest(t *testing.T) {
	req := "a1" + tstr("Attestation") + "a3" + tstr("user_data") + "4104" + tstr("nonce") + "f6" + tstr("public_key") + "4101"
	d, _ := fakeDevice(t, expect(t, req, "a1"+tstr("Attestation")+"a1"+tstr("document")+"4484a0a0f6"))
	doc, err := d.Attest(t.Context(), AttestRequest{PublicKey: []byte{1}, UserData: []byte{4}})
	if err != nil || !bytes.Equal(doc, []byte{0x84, 0xa0, 0xa0, 0xf6}) {
		t.Fatalf("Attest = %x, %v", doc, err)
	}
}

func TestDeviceDescribePCR(t *testing.T) {
	d, _ := fakeDevice(t, expect(t, "a1"+tstr("DescribePCR")+"a1"+tstr("index")+"04",
		"a1"+tstr("DescribePCR")+"a2"+tstr("lock")+"f5"+tstr("data")+zeros48))
	pcr, err := d.DescribePCR(t.Context(), 4)
	if err != nil || len(pcr) != PCRSize {
		t.Fatalf("DescribePCR = %x, %v", pcr, err)
	}
}

func TestDeviceRandomAssemblesChunks(t *testing.T) {
	var n byte
	d, ft := fakeDevice(t, func(req []byte) ([]byte, error) {
		if string(req) != string(unhex(t, tstr("GetRandom"))) {
			t.Errorf("request %x", req)
		}
		n++
		// 256 bytes, as the NSM returns, each chunk filled with its number.
		return append(unhex(t, "a1"+tstr("GetRandom")+"a1"+tstr("random")+"590100"), bytes.Repeat([]byte{n}, 256)...), nil
	})
	got, err := d.Random(t.Context(), 600)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append(bytes.Repeat([]byte{1}, 256), bytes.Repeat([]byte{2}, 256)...), bytes.Repeat([]byte{3}, 88)...)
	if !bytes.Equal(got, want) || ft.calls.Load() != 3 {
		t.Errorf("got %d bytes in %d calls", len(got), ft.calls.Load())
	}
	if got, err := d.Random(t.Context(), 0); err != nil || len(got) != 0 || ft.calls.Load() != 3 {
		t.Errorf("Random(0) = %x, %v after %d calls", got, err, ft.calls.Load())
	}
}

func TestDeviceRefuses(t *testing.T) {
	errBroken := errors.New("broken")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	answer := func(resp string) func([]byte) ([]byte, error) {
		return func([]byte) ([]byte, error) { return unhex(t, resp), nil }
	}
	tests := []struct {
		name   string
		handle func([]byte) ([]byte, error)
		call   func(*Device) ([]byte, error)
		calls  int32
		is     error
		text   string
	}{
		{"attestation field too large", nil, func(d *Device) ([]byte, error) {
			return d.Attest(t.Context(), AttestRequest{Nonce: make([]byte, MaxAttestField+1)})
		}, 0, nil, "nonce is 1025 bytes"},
		{"random size negative", nil, func(d *Device) ([]byte, error) { return d.Random(t.Context(), -1) }, 0, nil, "out of range"},
		{"random size too large", nil, func(d *Device) ([]byte, error) { return d.Random(t.Context(), MaxRandom+1) }, 0, nil, "out of range"},
		{"PCR index", nil, func(d *Device) ([]byte, error) { return d.DescribePCR(t.Context(), 32) }, 0, nil, "out of range"},
		{"cancelled", nil, func(d *Device) ([]byte, error) { return d.Random(cancelled, 1) }, 0, context.Canceled, ""},
		{"transport error", func([]byte) ([]byte, error) { return nil, errBroken },
			func(d *Device) ([]byte, error) { return d.DescribePCR(t.Context(), 0) }, 1, errBroken, ""},
		{"device error", answer("a1" + tstr("Error") + tstr("InvalidOperation")),
			func(d *Device) ([]byte, error) { return d.Attest(t.Context(), AttestRequest{}) }, 1, nil, `"InvalidOperation"`},
		{"empty random chunk", answer("a1" + tstr("GetRandom") + "a1" + tstr("random") + "40"),
			func(d *Device) ([]byte, error) { return d.Random(t.Context(), 8) }, 1, nil, "no bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			handle := tt.handle
			if handle == nil {
				handle = func([]byte) ([]byte, error) { t.Error("unexpected request"); return nil, errBroken }
			}
			d, ft := fakeDevice(t, handle)
			got, err := tt.call(d)
			if err == nil || got != nil {
				t.Fatalf("got %x, %v; want an error", got, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want %v", err, tt.is)
			}
			if !strings.HasPrefix(err.Error(), "nsm: ") && !errors.Is(err, errBroken) || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("err = %q, want it to contain %q", err, tt.text)
			}
			if ft.calls.Load() != tt.calls {
				t.Errorf("%d requests, want %d", ft.calls.Load(), tt.calls)
			}
		})
	}
}

func TestDeviceSerialisesAndCloses(t *testing.T) {
	d, ft := fakeDevice(t, func([]byte) ([]byte, error) {
		return unhex(t, "a1"+tstr("GetRandom")+"a1"+tstr("random")+"4101"), nil
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := d.Random(t.Context(), 4); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := d.Close(); err != nil || !ft.closed.Load() {
		t.Errorf("Close = %v, closed %v", err, ft.closed.Load())
	}
}
