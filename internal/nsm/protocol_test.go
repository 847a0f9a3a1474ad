package nsm

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// tstr is a CBOR text string shorter than 24 bytes: header 0x60+len, then
// the UTF-8 bytes. Everything else in these tests is hand-written CBOR, per
// the request/response table in shared/research/nitro-go.md §2.
func tstr(s string) string {
	if len(s) >= 24 {
		panic("tstr: too long")
	}
	return hex.EncodeToString(append([]byte{0x60 + byte(len(s))}, s...))
}

func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

var zeros48 = "5830" + strings.Repeat("00", 48)

func TestEncodeRequests(t *testing.T) {
	tests := []struct {
		name   string
		encode func() ([]byte, error)
		want   string
	}{
		{"GetRandom is a bare string", encodeGetRandom, tstr("GetRandom")},
		{"DescribePCR 3", func() ([]byte, error) { return encodeDescribePCR(3) },
			"a1" + tstr("DescribePCR") + "a1" + tstr("index") + "03"},
		{"DescribePCR 31", func() ([]byte, error) { return encodeDescribePCR(31) },
			"a1" + tstr("DescribePCR") + "a1" + tstr("index") + "181f"},
		{"Attestation without fields", func() ([]byte, error) { return encodeAttestation(AttestRequest{}) },
			"a1" + tstr("Attestation") + "a3" + tstr("user_data") + "f6" + tstr("nonce") + "f6" + tstr("public_key") + "f6"},
		{"Attestation empty fields are null", func() ([]byte, error) {
			return encodeAttestation(AttestRequest{PublicKey: []byte{}, UserData: []byte{}, Nonce: []byte{}})
		}, "a1" + tstr("Attestation") + "a3" + tstr("user_data") + "f6" + tstr("nonce") + "f6" + tstr("public_key") + "f6"},
		{"Attestation with fields", func() ([]byte, error) {
			return encodeAttestation(AttestRequest{PublicKey: []byte{1, 2, 3}, UserData: []byte{4}, Nonce: []byte{5, 6}})
		}, "a1" + tstr("Attestation") + "a3" + tstr("user_data") + "4104" + tstr("nonce") + "420506" + tstr("public_key") + "43010203"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.encode()
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, tt.want); !bytes.Equal(got, want) {
				t.Errorf("got  %x\nwant %x", got, want)
			}
		})
	}
}

func TestEncodeRefuses(t *testing.T) {
	for _, i := range []int{-1, 32, 65536} {
		if b, err := encodeDescribePCR(i); err == nil {
			t.Errorf("encodeDescribePCR(%d) = %x, want an error", i, b)
		}
	}
	big := make([]byte, maxRequestSize)
	if _, err := encodeAttestation(AttestRequest{UserData: big}); err == nil {
		t.Error("oversized request encoded")
	}
}

func TestDecodeResponses(t *testing.T) {
	okPCR := "a1" + tstr("DescribePCR") + "a2" + tstr("lock") + "f5" + tstr("data") + zeros48
	tests := []struct {
		name    string
		decode  func([]byte) ([]byte, error)
		in      string
		want    string // hex of the result
		errCode string // DeviceError code
		errText string // substring of another error
	}{
		{name: "DescribePCR", decode: decodeDescribePCR, in: okPCR, want: strings.Repeat("00", 48)},
		{name: "DescribePCR unknown field ignored", decode: decodeDescribePCR,
			in: "a1" + tstr("DescribePCR") + "a3" + tstr("lock") + "f4" + tstr("data") + zeros48 + tstr("new") + "01", want: strings.Repeat("00", 48)},
		{name: "DescribePCR short data", decode: decodeDescribePCR,
			in: "a1" + tstr("DescribePCR") + "a2" + tstr("lock") + "f5" + tstr("data") + "4100", errText: "1 bytes, want 48"},
		{name: "Attestation", decode: decodeAttestation,
			in: "a1" + tstr("Attestation") + "a1" + tstr("document") + "4484a0a0f6", want: "84a0a0f6"},
		{name: "Attestation empty", decode: decodeAttestation,
			in: "a1" + tstr("Attestation") + "a1" + tstr("document") + "40", errText: "empty attestation document"},
		{name: "GetRandom", decode: decodeGetRandom,
			in: "a1" + tstr("GetRandom") + "a1" + tstr("random") + "43010203", want: "010203"},
		{name: "Error", decode: decodeDescribePCR, in: "a1" + tstr("Error") + tstr("InvalidIndex"), errCode: "InvalidIndex"},
		{name: "Error to Attestation", decode: decodeAttestation, in: "a1" + tstr("Error") + tstr("InputTooLarge"), errCode: "InputTooLarge"},
		{name: "bare unit variant", decode: decodeDescribePCR, in: tstr("LockPCR"), errText: `unexpected "LockPCR" response`},
		{name: "other variant", decode: decodeDescribePCR,
			in: "a1" + tstr("GetRandom") + "a1" + tstr("random") + "4101", errText: `unexpected "GetRandom" response`},
		{name: "two variants", decode: decodeGetRandom,
			in: "a2" + tstr("GetRandom") + "a1" + tstr("random") + "4101" + tstr("Error") + tstr("InternalError"), errText: "2 entries"},
		{name: "duplicate inner key", decode: decodeGetRandom,
			in: "a1" + tstr("GetRandom") + "a2" + tstr("random") + "4101" + tstr("random") + "4102", errText: "duplicate map key"},
		{name: "indefinite-length map", decode: decodeGetRandom,
			in: "bf" + tstr("GetRandom") + "a1" + tstr("random") + "4101ff", errText: "indefinite-length"},
		{name: "trailing bytes", decode: decodeGetRandom,
			in: "a1" + tstr("GetRandom") + "a1" + tstr("random") + "410100", errText: "extraneous data"},
		{name: "empty", decode: decodeGetRandom, in: "", errText: "EOF"},
		{name: "error code not a string", decode: decodeGetRandom, in: "a1" + tstr("Error") + "05", errText: "malformed error response"},
		{name: "variant content not a map", decode: decodeDescribePCR, in: "a1" + tstr("DescribePCR") + tstr("x"), errText: "malformed DescribePCR response"},
		{name: "wrong field type", decode: decodeGetRandom, in: "a1" + tstr("GetRandom") + "a1" + tstr("random") + tstr("x"), errText: "malformed GetRandom response"},
		{name: "integer variant key", decode: decodeGetRandom, in: "a10100", errText: "malformed GetRandom response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.decode(unhex(t, tt.in))
			var de *DeviceError
			switch {
			case tt.errCode != "":
				if !errors.As(err, &de) || de.Code != tt.errCode || got != nil {
					t.Fatalf("got %x, %v; want DeviceError %q", got, err, tt.errCode)
				}
			case tt.errText != "":
				if err == nil || got != nil || !strings.Contains(err.Error(), tt.errText) || !strings.HasPrefix(err.Error(), "nsm: ") {
					t.Fatalf("got %x, %v; want an error containing %q", got, err, tt.errText)
				}
			default:
				if err != nil || hex.EncodeToString(got) != tt.want {
					t.Fatalf("got %x, %v; want %s", got, err, tt.want)
				}
			}
		})
	}
}

// FuzzDecodeResponse checks that response decoding never panics and
// never returns both a value and an error.
func FuzzDecodeResponse(f *testing.F) {
	for _, seed := range []string{
		"a1" + tstr("DescribePCR") + "a2" + tstr("lock") + "f5" + tstr("data") + zeros48,
		"a1" + tstr("Attestation") + "a1" + tstr("document") + "4484a0a0f6",
		"a1" + tstr("GetRandom") + "a1" + tstr("random") + "43010203",
		"a1" + tstr("Error") + tstr("InvalidIndex"),
		tstr("LockPCR"),
	} {
		f.Add(unhex(f, seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxResponseSize { // the device never returns more
			return
		}
		for _, decode := range []func([]byte) ([]byte, error){decodeAttestation, decodeDescribePCR, decodeGetRandom} {
			// (nil, nil) is possible: an empty GetRandom chunk, which
			// Device.Random refuses.
			if got, err := decode(b); got != nil && err != nil {
				t.Fatalf("decode = %x, %v", got, err)
			}
		}
	})
}
