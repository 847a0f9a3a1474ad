package pcr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var (
	testKernel  = []byte("bzImage: not a real kernel")
	testCmdline = []byte("reboot=k panic=30 pci=off nomodules console=ttyS0 random.trust_cpu=on")
	testBoot    = []byte("bootstrap ramdisk: init, nsm.ko, dev/")
	testApp     = []byte("application ramdisk: rootfs/, cmd, env")
	testApp2    = []byte("a second application ramdisk")
)

func mustBuild(t testing.TB, spec EIFSpec) []byte {
	t.Helper()
	b, err := BuildEIF(spec)
	if err != nil {
		t.Fatalf("BuildEIF: %v", err)
	}
	return b
}

func nitroEIF(t testing.TB) []byte {
	return mustBuild(t, EIFSpec{
		DefaultMem: 1 << 30, DefaultCPUs: 2,
		Sections: NitroCLILayout(testKernel, testCmdline, testBoot, testApp),
	})
}

func read(t *testing.T, b []byte) (*Image, error) {
	t.Helper()
	return ReadEIF(bytes.NewReader(b), int64(len(b)))
}

func TestReadEIFMeasuresLikeNitroCLI(t *testing.T) {
	tests := []struct {
		name                string
		sections            []RawSection
		pcr0, pcr1, pcr2    string
		wantSigned, wantARM bool
		flags, version      uint16
		wantSections        int
	}{
		{
			name:     "nitro-cli layout",
			sections: NitroCLILayout(testKernel, testCmdline, testBoot, testApp),
			pcr0:     naiveMeasure(testKernel, testCmdline, testBoot, testApp),
			pcr1:     naiveMeasure(testKernel, testCmdline, testBoot),
			pcr2:     naiveMeasure(testApp),
		},
		{
			name:     "three ramdisks, aarch64",
			sections: NitroCLILayout(testKernel, testCmdline, testBoot, testApp, testApp2),
			flags:    FlagARM64, wantARM: true,
			pcr0: naiveMeasure(testKernel, testCmdline, testBoot, testApp, testApp2),
			pcr1: naiveMeasure(testKernel, testCmdline, testBoot),
			pcr2: naiveMeasure(testApp, testApp2),
		},
		{
			name:     "one ramdisk leaves PCR2 the digest of nothing",
			sections: NitroCLILayout(testKernel, testCmdline, testBoot),
			pcr0:     naiveMeasure(testKernel, testCmdline, testBoot),
			pcr1:     naiveMeasure(testKernel, testCmdline, testBoot),
			pcr2:     naiveMeasure(),
		},
		{
			name: "signature and metadata are not measured",
			sections: append(NitroCLILayout(testKernel, testCmdline, testBoot, testApp),
				RawSection{SectionSignature, []byte("cbor signature")}),
			wantSigned: true,
			pcr0:       naiveMeasure(testKernel, testCmdline, testBoot, testApp),
			pcr1:       naiveMeasure(testKernel, testCmdline, testBoot),
			pcr2:       naiveMeasure(testApp),
		},
		{
			name: "file order, not type order, decides the concatenation",
			sections: []RawSection{
				{SectionCmdline, testCmdline}, {SectionKernel, testKernel},
				{SectionRamdisk, testBoot}, {SectionMetadata, []byte("{}")}, {SectionRamdisk, testApp},
			},
			pcr0: naiveMeasure(testCmdline, testKernel, testBoot, testApp),
			pcr1: naiveMeasure(testCmdline, testKernel, testBoot),
			pcr2: naiveMeasure(testApp),
		},
		{
			name:     "version 2 without metadata",
			version:  2,
			sections: []RawSection{{SectionKernel, testKernel}, {SectionCmdline, testCmdline}, {SectionRamdisk, testBoot}},
			pcr0:     naiveMeasure(testKernel, testCmdline, testBoot),
			pcr1:     naiveMeasure(testKernel, testCmdline, testBoot),
			pcr2:     naiveMeasure(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustBuild(t, EIFSpec{Version: tt.version, Flags: tt.flags, DefaultMem: 512 << 20, DefaultCPUs: 2, Sections: tt.sections})
			img, err := read(t, b)
			if err != nil {
				t.Fatalf("ReadEIF: %v", err)
			}
			m := img.Measurements
			for _, c := range []struct{ name, got, want string }{
				{"PCR0", Hex(m.PCR0), tt.pcr0}, {"PCR1", Hex(m.PCR1), tt.pcr1}, {"PCR2", Hex(m.PCR2), tt.pcr2},
			} {
				if c.got != c.want {
					t.Errorf("%s = %s, want %s", c.name, c.got, c.want)
				}
			}
			if m.PCR8 != nil {
				t.Error("PCR8 set from sections, want nil")
			}
			if img.Signed() != tt.wantSigned {
				t.Errorf("Signed() = %v, want %v", img.Signed(), tt.wantSigned)
			}
			if got, want := img.Header.Arch() == "aarch64", tt.wantARM; got != want {
				t.Errorf("Arch() = %s", img.Header.Arch())
			}
			if len(img.Sections) != len(tt.sections) {
				t.Fatalf("got %d sections, want %d", len(img.Sections), len(tt.sections))
			}
			for i, s := range img.Sections {
				if s.Type != tt.sections[i].Type || s.Size != int64(len(tt.sections[i].Data)) {
					t.Errorf("section %d = %s/%d, want %s/%d", i, s.Type, s.Size, tt.sections[i].Type, len(tt.sections[i].Data))
				}
				if got := b[s.DataOffset : s.DataOffset+s.Size]; !bytes.Equal(got, tt.sections[i].Data) {
					t.Errorf("section %d data offset %d does not point at its data", i, s.DataOffset)
				}
			}
		})
	}
}

func TestReadEIFHeader(t *testing.T) {
	img, err := read(t, nitroEIF(t))
	if err != nil {
		t.Fatal(err)
	}
	h := img.Header
	if h.Version != CurrentVersion || h.DefaultMem != 1<<30 || h.DefaultCPUs != 2 || h.NumSections != 5 {
		t.Errorf("header = %+v", h)
	}
	if h.SectionOffsets[0] != HeaderSize {
		t.Errorf("first section at %d, want %d", h.SectionOffsets[0], HeaderSize)
	}
}

func TestReadEIFFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tmkms.eif")
	if err := os.WriteFile(path, nitroEIF(t), 0o600); err != nil {
		t.Fatal(err)
	}
	img, err := ReadEIFFile(path)
	if err != nil {
		t.Fatalf("ReadEIFFile: %v", err)
	}
	if got, want := Hex(img.Measurements.PCR0), naiveMeasure(testKernel, testCmdline, testBoot, testApp); got != want {
		t.Errorf("PCR0 = %s, want %s", got, want)
	}
	if _, err := ReadEIFFile(filepath.Dir(path)); err == nil {
		t.Error("ReadEIFFile on a directory succeeded")
	}
	if _, err := ReadEIFFile(filepath.Join(t.TempDir(), "missing.eif")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadEIFFile on a missing file: %v, want os.ErrNotExist", err)
	}
}

// corrupt returns a valid EIF changed by edit; with fixCRC the CRC is
// recomputed so the change reaches the structural checks.
func corrupt(t *testing.T, fixCRC bool, edit func([]byte) []byte) []byte {
	b := edit(nitroEIF(t))
	if fixCRC {
		if err := SetCRC(b); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func put16(off int, v uint16) func([]byte) []byte {
	return func(b []byte) []byte { binary.BigEndian.PutUint16(b[off:], v); return b }
}

func put64(off int, v uint64) func([]byte) []byte {
	return func(b []byte) []byte { binary.BigEndian.PutUint64(b[off:], v); return b }
}

func TestReadEIFRejects(t *testing.T) {
	kernelHdr := HeaderSize // first section header
	tests := []struct {
		name   string
		in     []byte
		reason string // part of the message an operator would see
		crc    bool   // expect ErrCRCMismatch
	}{
		{"empty", nil, "shorter than", false},
		{"header only", nitroEIF(t)[:HeaderSize], "truncated section header", false},
		{"bad magic", corrupt(t, true, func(b []byte) []byte { b[0] = 'x'; return b }), "bad magic", false},
		{"version 1", corrupt(t, true, put16(4, 1)), "unsupported EIF version 1", false},
		{"version 5", corrupt(t, true, put16(4, 5)), "unsupported EIF version 5", false},
		{"unknown flag", corrupt(t, true, put16(6, 2)), "unknown header flags", false},
		{"one section", corrupt(t, true, put16(26, 1)), "num_sections is 1", false},
		{"33 sections", corrupt(t, true, put16(26, 33)), "num_sections is 33", false},
		{"stale table entry", corrupt(t, true, put64(28+8*31, 7)), "entry 31 is not zero", false},
		{"table offset disagrees", corrupt(t, true, put64(28, HeaderSize+1)), "header table says", false},
		{"table size disagrees", corrupt(t, true, put64(28+8*MaxSections, 1)), "header table says 1", false},
		{"invalid section type 0", corrupt(t, true, put16(kernelHdr, 0)), "invalid section type 0", false},
		{"invalid section type 6", corrupt(t, true, put16(kernelHdr, 6)), "invalid section type 6", false},
		{"section flags", corrupt(t, true, put16(kernelHdr+2, 1)), "reserved flags", false},
		{"huge section", corrupt(t, true, put64(kernelHdr+4, 1<<62)), "claims 4611686018427387904 bytes", false},
		{"max section", corrupt(t, true, put64(kernelHdr+4, ^uint64(0))), "claims 18446744073709551615 bytes", false},
		{"trailing data", corrupt(t, true, func(b []byte) []byte { return append(b, 0) }), "trailing data", false},
		{"truncated data", corrupt(t, true, func(b []byte) []byte { return b[:len(b)-1] }), "only", false},
		{"flipped data bit", corrupt(t, false, func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), "CRC32", true},
		{"flipped CRC bit", corrupt(t, false, func(b []byte) []byte { b[crcOffset] ^= 1; return b }), "CRC32", true},
		{"no kernel", build(t, 4, RawSection{SectionCmdline, nil}, RawSection{SectionMetadata, nil}), "no kernel", false},
		{"two kernels", build(t, 4, RawSection{SectionKernel, nil}, RawSection{SectionKernel, nil}), "more than one kernel", false},
		{"no cmdline", build(t, 4, RawSection{SectionKernel, nil}, RawSection{SectionRamdisk, nil}, RawSection{SectionMetadata, nil}), "no cmdline", false},
		{"no ramdisk", build(t, 4, RawSection{SectionKernel, nil}, RawSection{SectionCmdline, nil}, RawSection{SectionMetadata, nil}), "no ramdisk", false},
		{"ramdisk before kernel", build(t, 4, RawSection{SectionRamdisk, nil}, RawSection{SectionKernel, nil}), "before the kernel", false},
		{"no metadata in v4", build(t, 4, RawSection{SectionKernel, nil}, RawSection{SectionCmdline, nil}, RawSection{SectionRamdisk, nil}), "no metadata", false},
		{"metadata in v3", build(t, 3, NitroCLILayout(nil, nil, nil)...), "metadata section in a version 3", false},
		{"signature in v2", build(t, 2, RawSection{SectionKernel, nil}, RawSection{SectionCmdline, nil}, RawSection{SectionRamdisk, nil}, RawSection{SectionSignature, nil}), "signature section in a version 2", false},
		{"oversized signature", build(t, 4, append(NitroCLILayout(nil, nil, nil), RawSection{SectionSignature, make([]byte, MaxSignatureSize+1)})...), "more than 32768", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := read(t, tt.in)
			if err == nil {
				t.Fatalf("ReadEIF accepted it: %+v", img.Header)
			}
			if img != nil {
				t.Error("ReadEIF returned an image together with an error")
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FormatError", err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q does not mention %q", err, tt.reason)
			}
			if got := errors.Is(err, ErrCRCMismatch); got != tt.crc {
				t.Errorf("errors.Is(ErrCRCMismatch) = %v, want %v", got, tt.crc)
			}
		})
	}
}

func build(t *testing.T, version uint16, sections ...RawSection) []byte {
	return mustBuild(t, EIFSpec{Version: version, Sections: sections})
}

// shortReader claims more bytes than it has, like a file truncated while
// being read.
type shortReader struct{ *bytes.Reader }

func TestReadEIFShortReader(t *testing.T) {
	b := nitroEIF(t)
	r := shortReader{bytes.NewReader(b[:len(b)-10])}
	if _, err := ReadEIF(r, int64(len(b))); err == nil {
		t.Fatal("ReadEIF succeeded on a reader shorter than its size")
	}
	if _, err := ReadEIF(bytes.NewReader(b), -1); err == nil {
		t.Fatal("ReadEIF succeeded with a negative size")
	}
}

func TestBuildEIFRejects(t *testing.T) {
	if _, err := BuildEIF(EIFSpec{Sections: []RawSection{{SectionKernel, nil}}}); err == nil {
		t.Error("BuildEIF with one section succeeded")
	}
	if _, err := BuildEIF(EIFSpec{Sections: make([]RawSection, MaxSections+1)}); err == nil {
		t.Error("BuildEIF with 33 sections succeeded")
	}
	if err := SetCRC(make([]byte, 10)); err == nil {
		t.Error("SetCRC on a short buffer succeeded")
	}
}
