package pcr

import (
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
)

// Measurements are the PCRs nitro-cli reports for an EIF. PCR8 is nil
// unless the caller sets it from the signing certificate (PCR8): it is not
// derived from the sections.
type Measurements struct {
	PCR0 [Size]byte // kernel, cmdline and every ramdisk: the whole image
	PCR1 [Size]byte // kernel, cmdline and the first ramdisk: kernel and bootstrap
	PCR2 [Size]byte // every ramdisk after the first: the application
	PCR8 *[Size]byte
}

// copyBufSize bounds the memory used to stream a section, whatever its size.
const copyBufSize = 64 << 10

// measureSections streams every section once through the CRC and the three
// PCR hashes, in file order. Each hash sees section data only, never section
// headers, and the signature and metadata sections feed the CRC alone:
//
//	PCR0 = SHA-384(0^48 || SHA-384(kernel || cmdline || ramdisk[0] || ramdisk[1] ...))
//	PCR1 = SHA-384(0^48 || SHA-384(kernel || cmdline || ramdisk[0]))
//	PCR2 = SHA-384(0^48 || SHA-384(ramdisk[1] || ramdisk[2] ...))
//
// where the concatenations follow file order, as nitro-cli's EifReader feeds
// its image, bootstrap and app hashers.
func measureSections(r io.ReaderAt, headerNoCRC []byte, sections []Section, wantCRC uint32) (Measurements, error) {
	crc := crc32.NewIEEE()
	crc.Write(headerNoCRC)
	image, boot, app := sha512.New384(), sha512.New384(), sha512.New384()
	buf := make([]byte, copyBufSize)
	ramdisks := 0
	for _, s := range sections {
		crc.Write(sectionHeaderBytes(s))
		sinks := []io.Writer{crc}
		switch s.Type {
		case SectionKernel, SectionCmdline:
			sinks = append(sinks, image, boot)
		case SectionRamdisk:
			if ramdisks == 0 {
				sinks = append(sinks, image, boot)
			} else {
				sinks = append(sinks, image, app)
			}
			ramdisks++
		}
		if err := copySection(io.MultiWriter(sinks...), r, s, buf); err != nil {
			return Measurements{}, err
		}
	}
	if got := crc.Sum32(); got != wantCRC {
		return Measurements{}, &FormatError{
			Offset: crcOffset,
			Reason: fmt.Sprintf("header CRC32 is %#08x but the file's is %#08x", wantCRC, got),
			Err:    ErrCRCMismatch,
		}
	}
	return Measurements{PCR0: finish(image), PCR1: finish(boot), PCR2: finish(app)}, nil
}

func copySection(w io.Writer, r io.ReaderAt, s Section, buf []byte) error {
	n, err := io.CopyBuffer(w, io.NewSectionReader(r, s.DataOffset, s.Size), buf)
	if err != nil {
		return fmt.Errorf("pcr: failed to read %s section at offset %d: %w", s.Type, s.Offset, err)
	}
	if n != s.Size {
		// The caller's size promised bytes the reader does not have.
		return fmt.Errorf("pcr: failed to read %s section at offset %d: got %d of %d bytes: %w",
			s.Type, s.Offset, n, s.Size, io.ErrUnexpectedEOF)
	}
	return nil
}

func sectionHeaderBytes(s Section) []byte {
	var b [SectionHeaderSize]byte
	binary.BigEndian.PutUint16(b[0:], uint16(s.Type))
	binary.BigEndian.PutUint16(b[2:], s.Flags)
	binary.BigEndian.PutUint64(b[4:], uint64(s.Size))
	return b[:]
}

func finish(h hash.Hash) [Size]byte {
	var digest [Size]byte
	h.Sum(digest[:0])
	return measure(digest)
}
