package pcr

import (
	"strings"
	"testing"
)

// nitroCLIOutput is nitro-cli build-enclave output as printed in
// aws-nitro-enclaves-sdk-c docs/kmstool.md, minus the leading
// "Enclave Image successfully created." line.
const nitroCLIOutput = `{
  "Measurements": {
    "HashAlgorithm": "Sha384 { ... }",
    "PCR0": "287b24930a9f0fe14b01a71ecdc00d8be8fad90f9834d547158854b8279c74095c43f8d7f047714e98deb7903f20e3dd",
    "PCR1": "aca6e62ffbf5f7deccac452d7f8cee1b94048faf62afc16c8ab68c9fed8c38010c73a669f9a36e596032f0b973d21895",
    "PCR2": "0315f483ae1220b5e023d8c80ff1e135edcca277e70860c31f3003b36e3b2aaec5d043c9ce3a679e3bbd5b3b93b61d6f"
  }
}
`

func TestReportMatchesNitroCLIByteForByte(t *testing.T) {
	m, err := ParseReport([]byte(nitroCLIOutput))
	if err != nil {
		t.Fatalf("ParseReport: %v", err)
	}
	if got := Hex(m.PCR0); !strings.HasPrefix(got, "287b2493") {
		t.Errorf("PCR0 = %s", got)
	}
	out, err := MarshalReport(m)
	if err != nil {
		t.Fatalf("MarshalReport: %v", err)
	}
	if string(out) != nitroCLIOutput {
		t.Errorf("MarshalReport =\n%s\nwant\n%s", out, nitroCLIOutput)
	}
}

func TestReportWithPCR8(t *testing.T) {
	pcr8 := PCR8([]byte("certificate"))
	m := Measurements{PCR0: PCR4("a"), PCR1: PCR4("b"), PCR2: PCR4("c"), PCR8: &pcr8}
	out, err := MarshalReport(m)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"PCR8": "`+Hex(pcr8)+`"`) {
		t.Errorf("report lacks PCR8:\n%s", out)
	}
	back, err := ParseReport(out)
	if err != nil {
		t.Fatal(err)
	}
	if back.PCR0 != m.PCR0 || back.PCR1 != m.PCR1 || back.PCR2 != m.PCR2 || back.PCR8 == nil || *back.PCR8 != pcr8 {
		t.Errorf("round trip = %+v, want %+v", back, m)
	}
}

func TestParseReportRejects(t *testing.T) {
	pcr := `"` + strings.Repeat("ab", Size) + `"`
	valid := `"HashAlgorithm": "Sha384 { ... }", "PCR0": ` + pcr + `, "PCR1": ` + pcr + `, "PCR2": ` + pcr
	tests := map[string]string{
		"not JSON":          `{`,
		"no measurements":   `{}`,
		"null measurements": `{"Measurements": null}`,
		"sha256":            `{"Measurements": {"HashAlgorithm": "Sha256 { ... }", "PCR0": ` + pcr + `, "PCR1": ` + pcr + `, "PCR2": ` + pcr + `}}`,
		"missing PCR2":      `{"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": ` + pcr + `, "PCR1": ` + pcr + `}}`,
		"short PCR1":        `{"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": ` + pcr + `, "PCR1": "abcd", "PCR2": ` + pcr + `}}`,
		"bad PCR8":          `{"Measurements": {` + valid + `, "PCR8": "zz"}}`,
		"unknown key":       `{"Measurements": {` + valid + `, "PCR9": ` + pcr + `}}`,
	}
	for name, in := range tests {
		if m, err := ParseReport([]byte(in)); err == nil {
			t.Errorf("%s: ParseReport succeeded: %+v", name, m)
		} else if !strings.HasPrefix(err.Error(), "pcr: ") {
			t.Errorf("%s: error %q lacks the package prefix", name, err)
		}
	}
}

func TestMeasurementsOfBuiltEIFInReport(t *testing.T) {
	img, err := ReadEIF(strings.NewReader(string(nitroEIF(t))), int64(len(nitroEIF(t))))
	if err != nil {
		t.Fatal(err)
	}
	out, err := MarshalReport(img.Measurements)
	if err != nil {
		t.Fatal(err)
	}
	want := `"PCR2": "` + naiveMeasure(testApp) + `"`
	if !strings.Contains(string(out), want) {
		t.Errorf("report\n%s\nlacks %s", out, want)
	}
}
