package pcr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// HashAlgorithm is the "HashAlgorithm" value nitro-cli prints: Rust's Debug
// formatting of its sha2::Sha384 hasher, kept byte for byte so that output
// can be diffed against nitro-cli's.
const HashAlgorithm = "Sha384 { ... }"

// measurementsJSON fixes the key order nitro-cli uses (a BTreeMap, so sorted).
type measurementsJSON struct {
	HashAlgorithm string `json:"HashAlgorithm"`
	PCR0          string `json:"PCR0"`
	PCR1          string `json:"PCR1"`
	PCR2          string `json:"PCR2"`
	PCR8          string `json:"PCR8,omitempty"`
}

// MarshalJSON encodes m as the "Measurements" object of `nitro-cli
// describe-eif` and `build-enclave`.
func (m Measurements) MarshalJSON() ([]byte, error) {
	j := measurementsJSON{
		HashAlgorithm: HashAlgorithm,
		PCR0:          Hex(m.PCR0),
		PCR1:          Hex(m.PCR1),
		PCR2:          Hex(m.PCR2),
	}
	if m.PCR8 != nil {
		j.PCR8 = Hex(*m.PCR8)
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes a "Measurements" object as nitro-cli prints it. It is
// strict: a SHA-384 algorithm, PCR0 to PCR2 present, no other keys.
func (m *Measurements) UnmarshalJSON(data []byte) error {
	var j measurementsJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("pcr: failed to decode measurements: %w", err)
	}
	// Older nitro-cli builds printed a longer Debug form of the same hasher.
	if !strings.HasPrefix(j.HashAlgorithm, "Sha384") {
		return fmt.Errorf("pcr: measurements use hash algorithm %q, want SHA-384", j.HashAlgorithm)
	}
	var out Measurements
	for _, f := range []struct {
		name string
		hex  string
		dst  *[Size]byte
	}{{"PCR0", j.PCR0, &out.PCR0}, {"PCR1", j.PCR1, &out.PCR1}, {"PCR2", j.PCR2, &out.PCR2}} {
		v, err := decodeHex(f.hex)
		if err != nil {
			return fmt.Errorf("pcr: measurements %s: %w", f.name, err)
		}
		*f.dst = v
	}
	if j.PCR8 != "" {
		v, err := decodeHex(j.PCR8)
		if err != nil {
			return fmt.Errorf("pcr: measurements PCR8: %w", err)
		}
		out.PCR8 = &v
	}
	*m = out
	return nil
}

// MarshalReport returns what `nitro-cli build-enclave` prints after
// "Enclave Image successfully created.": {"Measurements": {...}}, indented
// by two spaces like serde_json's pretty printer, with a final newline.
func MarshalReport(m Measurements) ([]byte, error) {
	out, err := json.MarshalIndent(struct {
		Measurements Measurements `json:"Measurements"`
	}{m}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("pcr: failed to encode measurements: %w", err)
	}
	return append(out, '\n'), nil
}

// ParseReport reads the output of MarshalReport or of nitro-cli
// build-enclave/describe-eif (only its "Measurements" member is used).
func ParseReport(data []byte) (Measurements, error) {
	var doc struct {
		Measurements json.RawMessage `json:"Measurements"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return Measurements{}, fmt.Errorf("pcr: failed to decode report: %w", err)
	}
	if doc.Measurements == nil {
		return Measurements{}, errors.New(`pcr: report has no "Measurements" object`)
	}
	var m Measurements
	if err := m.UnmarshalJSON(doc.Measurements); err != nil {
		return Measurements{}, err
	}
	return m, nil
}
