package pcr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// EIF layout constants (aws-nitro-enclaves-image-format src/defs/mod.rs).
const (
	HeaderSize        = 548 // EifHeader, big-endian
	SectionHeaderSize = 12  // EifSectionHeader: type u16, flags u16, size u64
	MaxSections       = 32  // MAX_NUM_SECTIONS
	MaxSignatureSize  = 32768
	CurrentVersion    = 4

	crcOffset = HeaderSize - 4 // the CRC is the header's last field
)

const eifMagic = ".eif"

// FlagARM64 is header flag bit 0: the image is for aarch64 (clear: x86_64).
const FlagARM64 uint16 = 0x1

// SectionType is the type field of an EIF section header.
type SectionType uint16

// Section types. 0 (invalid) and anything above Metadata are rejected.
const (
	SectionKernel    SectionType = 1
	SectionCmdline   SectionType = 2
	SectionRamdisk   SectionType = 3
	SectionSignature SectionType = 4 // EIF v3+: CBOR [(cert, COSE_Sign1 over PCR0)]
	SectionMetadata  SectionType = 5 // EIF v4+: JSON build info, not measured
)

func (t SectionType) String() string {
	switch t {
	case SectionKernel:
		return "kernel"
	case SectionCmdline:
		return "cmdline"
	case SectionRamdisk:
		return "ramdisk"
	case SectionSignature:
		return "signature"
	case SectionMetadata:
		return "metadata"
	}
	return fmt.Sprintf("type %d", uint16(t))
}

// Header is the parsed EifHeader. Offsets and sizes past NumSections are
// zero in any file ReadEIF accepts.
type Header struct {
	Version        uint16
	Flags          uint16
	DefaultMem     uint64
	DefaultCPUs    uint64
	Reserved       uint16
	NumSections    uint16
	SectionOffsets [MaxSections]uint64 // offset of each section's header
	SectionSizes   [MaxSections]uint64 // size of each section's data
	Unused         uint32
	CRC32          uint32 // IEEE, over the whole file except this field
}

// Section is one section of an EIF, in file order.
type Section struct {
	Type       SectionType
	Flags      uint16
	Offset     int64 // file offset of the section header
	DataOffset int64 // file offset of the data: Offset + SectionHeaderSize
	Size       int64 // data size
}

// Image is a parsed and measured EIF.
type Image struct {
	Header       Header
	Sections     []Section
	Measurements Measurements
}

// ErrCRCMismatch is wrapped by the *FormatError for a file whose contents do
// not match the header's CRC32: well formed, but corrupted or tampered with.
var ErrCRCMismatch = errors.New("pcr: CRC32 mismatch")

// FormatError reports an EIF that is not well formed. Offset is where in the
// file the problem is, or -1 if it concerns the file as a whole.
type FormatError struct {
	Offset int64
	Reason string
	Err    error // a sentinel such as ErrCRCMismatch, or nil
}

func (e *FormatError) Error() string {
	if e.Offset < 0 {
		return "pcr: invalid EIF: " + e.Reason
	}
	return fmt.Sprintf("pcr: invalid EIF at offset %d: %s", e.Offset, e.Reason)
}

func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(off int64, format string, args ...any) error {
	return &FormatError{Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// ReadEIFFile opens, parses and measures the EIF at path.
func ReadEIFFile(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pcr: failed to open EIF: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("pcr: failed to stat EIF: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("pcr: EIF %q is not a regular file", path)
	}
	return ReadEIF(f, st.Size())
}

// ReadEIF parses the size-byte EIF in r, checks its structure and CRC, and
// computes PCR0, PCR1 and PCR2 as nitro-cli does. Structural problems are
// reported as *FormatError; read failures are wrapped as they are.
func ReadEIF(r io.ReaderAt, size int64) (*Image, error) {
	if size < HeaderSize {
		return nil, formatErr(-1, "file is %d bytes, shorter than the %d-byte header", size, HeaderSize)
	}
	var raw [HeaderSize]byte
	if _, err := r.ReadAt(raw[:], 0); err != nil {
		return nil, fmt.Errorf("pcr: failed to read EIF header: %w", err)
	}
	hdr, err := parseHeader(raw)
	if err != nil {
		return nil, err
	}
	sections, err := readSections(r, size, &hdr)
	if err != nil {
		return nil, err
	}
	if err := checkLayout(&hdr, sections); err != nil {
		return nil, err
	}
	m, err := measureSections(r, raw[:crcOffset], sections, hdr.CRC32)
	if err != nil {
		return nil, err
	}
	return &Image{Header: hdr, Sections: sections, Measurements: m}, nil
}

func parseHeader(raw [HeaderSize]byte) (Header, error) {
	if string(raw[0:4]) != eifMagic {
		return Header{}, formatErr(0, "bad magic %q, want %q", raw[0:4], eifMagic)
	}
	be := binary.BigEndian
	h := Header{
		Version:     be.Uint16(raw[4:]),
		Flags:       be.Uint16(raw[6:]),
		DefaultMem:  be.Uint64(raw[8:]),
		DefaultCPUs: be.Uint64(raw[16:]),
		Reserved:    be.Uint16(raw[24:]),
		NumSections: be.Uint16(raw[26:]),
		Unused:      be.Uint32(raw[crcOffset-4:]),
		CRC32:       be.Uint32(raw[crcOffset:]),
	}
	for i := range MaxSections {
		h.SectionOffsets[i] = be.Uint64(raw[28+8*i:])
		h.SectionSizes[i] = be.Uint64(raw[28+8*MaxSections+8*i:])
	}
	// Versions 0 and 1 were never published and >4 is undefined; 2 and 3
	// differ only in allowing a signature section.
	if h.Version < 2 || h.Version > CurrentVersion {
		return Header{}, formatErr(4, "unsupported EIF version %d, want 2 to %d", h.Version, CurrentVersion)
	}
	if h.Flags&^FlagARM64 != 0 {
		return Header{}, formatErr(6, "unknown header flags %#04x", h.Flags&^FlagARM64)
	}
	if h.NumSections < 2 || h.NumSections > MaxSections {
		return Header{}, formatErr(26, "num_sections is %d, want 2 to %d", h.NumSections, MaxSections)
	}
	for i := int(h.NumSections); i < MaxSections; i++ {
		if h.SectionOffsets[i] != 0 || h.SectionSizes[i] != 0 {
			return Header{}, formatErr(28+8*int64(i), "unused section table entry %d is not zero", i)
		}
	}
	return h, nil
}

// readSections walks the section headers back to back from the end of the
// EIF header, as nitro-cli's EifReader does, and requires the walk to agree
// with the header's table and to end exactly at the end of the file. That
// agreement is what makes our measurements equal nitro-cli's: it hashes what
// it walks, not what the table says.
func readSections(r io.ReaderAt, size int64, hdr *Header) ([]Section, error) {
	sections := make([]Section, 0, hdr.NumSections)
	pos := int64(HeaderSize)
	for i := range int(hdr.NumSections) {
		s, err := readSectionHeader(r, size, pos)
		if err != nil {
			return nil, err
		}
		if uint64(pos) != hdr.SectionOffsets[i] {
			return nil, formatErr(pos, "section %d starts at %d but the header table says %d", i, pos, hdr.SectionOffsets[i])
		}
		if uint64(s.Size) != hdr.SectionSizes[i] {
			return nil, formatErr(pos, "section %d (%s) has %d bytes but the header table says %d", i, s.Type, s.Size, hdr.SectionSizes[i])
		}
		sections = append(sections, s)
		pos = s.DataOffset + s.Size
	}
	if pos != size {
		return nil, formatErr(pos, "%d bytes of trailing data after the last section", size-pos)
	}
	return sections, nil
}

func readSectionHeader(r io.ReaderAt, size, pos int64) (Section, error) {
	if size-pos < SectionHeaderSize {
		return Section{}, formatErr(pos, "truncated section header: %d bytes left, want %d", size-pos, SectionHeaderSize)
	}
	var raw [SectionHeaderSize]byte
	if _, err := r.ReadAt(raw[:], pos); err != nil {
		return Section{}, fmt.Errorf("pcr: failed to read EIF section header at offset %d: %w", pos, err)
	}
	t := SectionType(binary.BigEndian.Uint16(raw[0:]))
	if t < SectionKernel || t > SectionMetadata {
		return Section{}, formatErr(pos, "invalid section type %d", uint16(t))
	}
	n := binary.BigEndian.Uint64(raw[4:])
	data := pos + SectionHeaderSize
	if n > uint64(size-data) {
		return Section{}, formatErr(pos, "%s section claims %d bytes but only %d remain", t, n, size-data)
	}
	flags := binary.BigEndian.Uint16(raw[2:])
	if flags != 0 {
		return Section{}, formatErr(pos+2, "%s section has reserved flags %#04x set", t, flags)
	}
	return Section{Type: t, Flags: flags, Offset: pos, DataOffset: data, Size: int64(n)}, nil
}

// checkLayout enforces the section rules of the EIF specification.
func checkLayout(hdr *Header, sections []Section) error {
	count := map[SectionType]int{}
	for _, s := range sections {
		if s.Type == SectionRamdisk && count[SectionKernel] == 0 {
			return formatErr(s.Offset, "ramdisk section before the kernel section")
		}
		count[s.Type]++
		if count[s.Type] > 1 && s.Type != SectionRamdisk {
			return formatErr(s.Offset, "more than one %s section", s.Type)
		}
		if s.Type == SectionSignature && s.Size > MaxSignatureSize {
			return formatErr(s.Offset, "signature section is %d bytes, more than %d", s.Size, MaxSignatureSize)
		}
	}
	switch {
	case count[SectionKernel] != 1:
		return formatErr(-1, "no kernel section")
	case count[SectionCmdline] != 1:
		return formatErr(-1, "no cmdline section")
	case count[SectionRamdisk] == 0:
		return formatErr(-1, "no ramdisk section")
	case count[SectionSignature] > 0 && hdr.Version < 3:
		return formatErr(-1, "signature section in a version %d EIF (needs 3 or later)", hdr.Version)
	case count[SectionMetadata] > 0 && hdr.Version < 4:
		return formatErr(-1, "metadata section in a version %d EIF (needs 4 or later)", hdr.Version)
	case count[SectionMetadata] == 0 && hdr.Version >= 4:
		return formatErr(-1, "no metadata section, mandatory since EIF version 4")
	}
	return nil
}

// Signed reports whether the image has a signature section, in which case its
// PCR8 is that of the signing certificate (see PCR8).
func (img *Image) Signed() bool {
	for _, s := range img.Sections {
		if s.Type == SectionSignature {
			return true
		}
	}
	return false
}

// Arch returns "aarch64" or "x86_64" from the header flags.
func (h Header) Arch() string {
	if h.Flags&FlagARM64 != 0 {
		return "aarch64"
	}
	return "x86_64"
}
