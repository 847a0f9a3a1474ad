package pcr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// RawSection is one section to write with BuildEIF.
type RawSection struct {
	Type SectionType
	Data []byte
}

// EIFSpec describes an EIF for BuildEIF. It exists so tests and tools can
// produce images without nitro-cli; it does not build bootable images.
type EIFSpec struct {
	Version     uint16 // 0 means CurrentVersion
	Flags       uint16 // FlagARM64 or 0
	DefaultMem  uint64
	DefaultCPUs uint64
	Sections    []RawSection // written back to back, in this order
}

// DefaultMetadata is the metadata section NitroCLILayout uses: the fields
// the EIF v4 JSON schema requires, with fixed values so output is stable.
const DefaultMetadata = `{"ImageName":"test","ImageVersion":"1.0","BuildMetadata":` +
	`{"BuildTime":"1970-01-01T00:00:00+00:00","BuildTool":"tmkms-nitro","BuildToolVersion":"0",` +
	`"OperatingSystem":"Linux","KernelVersion":"0"},"DockerInfo":{}}`

// NitroCLILayout returns sections in the order nitro-cli's EifBuilder writes
// them: kernel, cmdline, metadata, then the ramdisks (bootstrap first).
func NitroCLILayout(kernel, cmdline []byte, ramdisks ...[]byte) []RawSection {
	s := []RawSection{
		{SectionKernel, kernel},
		{SectionCmdline, cmdline},
		{SectionMetadata, []byte(DefaultMetadata)},
	}
	for _, r := range ramdisks {
		s = append(s, RawSection{SectionRamdisk, r})
	}
	return s
}

// BuildEIF serialises spec as an EIF with a correct section table and CRC.
// It checks only what it needs to write the file (2 to 32 sections), so
// tests can also build images that ReadEIF must reject.
func BuildEIF(spec EIFSpec) ([]byte, error) {
	n := len(spec.Sections)
	if n < 2 || n > MaxSections {
		return nil, fmt.Errorf("pcr: EIF needs 2 to %d sections, got %d", MaxSections, n)
	}
	version := spec.Version
	if version == 0 {
		version = CurrentVersion
	}
	total := HeaderSize
	for _, s := range spec.Sections {
		total += SectionHeaderSize + len(s.Data)
	}
	out := make([]byte, HeaderSize, total)
	hdr := out[:HeaderSize]
	copy(hdr, eifMagic)
	be := binary.BigEndian
	be.PutUint16(hdr[4:], version)
	be.PutUint16(hdr[6:], spec.Flags)
	be.PutUint64(hdr[8:], spec.DefaultMem)
	be.PutUint64(hdr[16:], spec.DefaultCPUs)
	be.PutUint16(hdr[26:], uint16(n))
	for i, s := range spec.Sections {
		be.PutUint64(hdr[28+8*i:], uint64(len(out)))
		be.PutUint64(hdr[28+8*MaxSections+8*i:], uint64(len(s.Data)))
		out = be.AppendUint16(out, uint16(s.Type))
		out = be.AppendUint16(out, 0)
		out = be.AppendUint64(out, uint64(len(s.Data)))
		out = append(out, s.Data...)
	}
	putCRC(out)
	return out, nil
}

// SetCRC recomputes and stores the header CRC of an EIF held in memory, so a
// test can alter a file and still reach the checks behind the CRC.
func SetCRC(eif []byte) error {
	if len(eif) < HeaderSize {
		return errors.New("pcr: EIF shorter than its header")
	}
	putCRC(eif)
	return nil
}

func putCRC(eif []byte) {
	crc := crc32.NewIEEE()
	crc.Write(eif[:crcOffset])
	crc.Write(eif[HeaderSize:])
	binary.BigEndian.PutUint32(eif[crcOffset:], crc.Sum32())
}
