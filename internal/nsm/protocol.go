package nsm

import (
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// The NSM speaks CBOR as serde encodes Rust's externally tagged enums
// (aws-nitro-enclaves-nsm-api src/api/mod.rs): a unit variant is a text
// string ("GetRandom"), a struct variant a one-entry map
// {"Attestation": {...}}. Failures come back as {"Error": "<code>"}.

const (
	variantAttestation = "Attestation"
	variantDescribePCR = "DescribePCR"
	variantGetRandom   = "GetRandom"
	variantError       = "Error"
)

// Sizes fixed by the driver (include/uapi/linux/nsm.h).
const (
	maxRequestSize  = 0x1000
	maxResponseSize = 0x3000
)

// attestationRequest is in the field order of the Rust struct.
type attestationRequest struct {
	UserData  []byte `cbor:"user_data"`
	Nonce     []byte `cbor:"nonce"`
	PublicKey []byte `cbor:"public_key"`
}

type describePCRRequest struct {
	Index uint16 `cbor:"index"`
}

type attestationResponse struct {
	Document []byte `cbor:"document"`
}

type describePCRResponse struct {
	Lock bool   `cbor:"lock"`
	Data []byte `cbor:"data"`
}

type getRandomResponse struct {
	Random []byte `cbor:"random"`
}

func encodeAttestation(req AttestRequest) ([]byte, error) {
	return encodeRequest(map[string]attestationRequest{variantAttestation: {
		UserData:  orNil(req.UserData),
		Nonce:     orNil(req.Nonce),
		PublicKey: orNil(req.PublicKey),
	}})
}

func encodeDescribePCR(index int) ([]byte, error) {
	if err := CheckPCRIndex(index); err != nil {
		return nil, err
	}
	return encodeRequest(map[string]describePCRRequest{variantDescribePCR: {Index: uint16(index)}})
}

func encodeGetRandom() ([]byte, error) {
	return encodeRequest(variantGetRandom)
}

func encodeRequest(v any) ([]byte, error) {
	b, err := cbor.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("nsm: failed to encode request: %w", err)
	}
	if len(b) > maxRequestSize {
		return nil, fmt.Errorf("nsm: request is %d bytes, limit %d", len(b), maxRequestSize)
	}
	return b, nil
}

// responseDecMode refuses duplicate keys and indefinite lengths but ignores
// unknown fields: the device is the trusted party here, and a field added by
// a newer NSM must not stop an enclave from booting.
func responseDecMode() (cbor.DecMode, error) {
	dm, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   8,
		FieldNameMatching: cbor.FieldNameMatchingCaseSensitive,
	}.DecMode()
	if err != nil {
		return nil, fmt.Errorf("nsm: internal error: %w", err)
	}
	return dm, nil
}

// decodeResponse checks that b is the want variant and decodes its content
// into v. An {"Error": code} response becomes a *DeviceError.
func decodeResponse(b []byte, want string, v any) error {
	dm, err := responseDecMode()
	if err != nil {
		return err
	}
	var outer map[string]cbor.RawMessage
	if err := dm.Unmarshal(b, &outer); err != nil {
		var unit string
		if dm.Unmarshal(b, &unit) == nil {
			return fmt.Errorf("nsm: unexpected %q response to a %s request", unit, want)
		}
		return fmt.Errorf("nsm: malformed %s response: %w", want, err)
	}
	if len(outer) != 1 {
		return fmt.Errorf("nsm: malformed %s response: map has %d entries, want 1", want, len(outer))
	}
	for variant, inner := range outer {
		switch variant {
		case variantError:
			return decodeError(dm, inner)
		case want:
			if err := dm.Unmarshal(inner, v); err != nil {
				return fmt.Errorf("nsm: malformed %s response: %w", want, err)
			}
			return nil
		default:
			return fmt.Errorf("nsm: unexpected %q response to a %s request", variant, want)
		}
	}
	return fmt.Errorf("nsm: internal error: empty %s response", want) // unreachable: len(outer) == 1
}

func decodeError(dm cbor.DecMode, raw cbor.RawMessage) error {
	var code string
	if err := dm.Unmarshal(raw, &code); err != nil {
		return fmt.Errorf("nsm: malformed error response: %w", err)
	}
	return &DeviceError{Code: code}
}

func decodeAttestation(b []byte) ([]byte, error) {
	var r attestationResponse
	if err := decodeResponse(b, variantAttestation, &r); err != nil {
		return nil, err
	}
	if len(r.Document) == 0 {
		return nil, fmt.Errorf("nsm: empty attestation document")
	}
	return r.Document, nil
}

func decodeDescribePCR(b []byte) ([]byte, error) {
	var r describePCRResponse
	if err := decodeResponse(b, variantDescribePCR, &r); err != nil {
		return nil, err
	}
	if len(r.Data) != PCRSize {
		return nil, fmt.Errorf("nsm: PCR value is %d bytes, want %d", len(r.Data), PCRSize)
	}
	return r.Data, nil
}

func decodeGetRandom(b []byte) ([]byte, error) {
	var r getRandomResponse
	if err := decodeResponse(b, variantGetRandom, &r); err != nil {
		return nil, err
	}
	return r.Random, nil
}
