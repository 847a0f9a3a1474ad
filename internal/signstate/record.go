package signstate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// The native state file is two fixed-size slots. Each save overwrites the
// older slot in place and issues one fdatasync, so a save costs one flush
// instead of the several a create-write-rename-dirsync sequence needs. A
// torn write damages only the slot being written; its checksum fails and
// the other slot, the previous state, is used.
//
// slot layout (big endian):
//
//	[0:16)     magic "tmkms-nitro-st1\n"
//	[16:24)    sequence number, +1 per save
//	[24:26)    payload length n
//	[26:26+n)  payload (see marshalState)
//	[1020:1024) CRC-32C of bytes [0:1020)
const (
	slotSize    = 1024
	fileSize    = 2 * slotSize
	headerSize  = 26
	crcOffset   = slotSize - 4
	maxPayload  = crcOffset - headerSize
	slotMagic   = "tmkms-nitro-st1\n"
	maxHashSize = 64
	maxSigSize  = 128
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var errTorn = errors.New("slot checksum mismatch (torn or damaged write)")

// encodeSlot writes state with sequence number seq into a slot-sized buffer.
func encodeSlot(buf []byte, seq uint64, s State) error {
	payload, err := MarshalState(s)
	if err != nil {
		return err
	}
	clear(buf[:slotSize])
	copy(buf, slotMagic)
	binary.BigEndian.PutUint64(buf[16:], seq)
	binary.BigEndian.PutUint16(buf[24:], uint16(len(payload)))
	copy(buf[headerSize:], payload)
	binary.BigEndian.PutUint32(buf[crcOffset:], crc32.Checksum(buf[:crcOffset], castagnoli))
	return nil
}

// decodeSlot parses one slot.
func decodeSlot(buf []byte) (uint64, State, error) {
	if string(buf[:16]) != slotMagic {
		return 0, State{}, errors.New("bad slot magic")
	}
	if crc32.Checksum(buf[:crcOffset], castagnoli) != binary.BigEndian.Uint32(buf[crcOffset:]) {
		return 0, State{}, errTorn
	}
	n := int(binary.BigEndian.Uint16(buf[24:]))
	if n > maxPayload {
		return 0, State{}, fmt.Errorf("payload length %d exceeds %d", n, maxPayload)
	}
	s, err := UnmarshalState(buf[headerSize : headerSize+n])
	return binary.BigEndian.Uint64(buf[16:]), s, err
}

// MarshalState encodes a state as the payload of a state-file slot, which
// is also how it travels between enclave and host: height i64, round i32,
// step i8, block hash (u8 len), parts total u32, parts hash (u8 len), sign
// bytes (u16 len), signature (u8 len).
func MarshalState(s State) ([]byte, error) {
	if err := checkSizes(s); err != nil {
		return nil, fmt.Errorf("signstate: %w", err)
	}
	b := make([]byte, 0, 13+1+len(s.BlockID.Hash)+5+len(s.BlockID.PartsHash)+2+len(s.SignBytes)+1+len(s.Signature))
	b = binary.BigEndian.AppendUint64(b, uint64(s.Height))
	b = binary.BigEndian.AppendUint32(b, uint32(s.Round))
	b = append(b, byte(s.Step))
	b = append(append(b, byte(len(s.BlockID.Hash))), s.BlockID.Hash...)
	b = binary.BigEndian.AppendUint32(b, s.BlockID.PartsTotal)
	b = append(append(b, byte(len(s.BlockID.PartsHash))), s.BlockID.PartsHash...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.SignBytes)))
	b = append(b, s.SignBytes...)
	b = append(append(b, byte(len(s.Signature))), s.Signature...)
	if len(b) > maxPayload {
		return nil, fmt.Errorf("signstate: state record of %d bytes exceeds %d (sign bytes too large)", len(b), maxPayload)
	}
	return b, nil
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil || n > len(r.b) {
		r.err = errors.New("truncated payload")
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() int  { v := r.take(1); return int(at(v, 0)) }
func (r *reader) u16() int { v := r.take(2); return int(at(v, 0))<<8 | int(at(v, 1)) }
func (r *reader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func at(b []byte, i int) byte {
	if i < len(b) {
		return b[i]
	}
	return 0
}

// UnmarshalState decodes MarshalState's encoding, refusing anything no
// signer could have written.
func UnmarshalState(b []byte) (State, error) {
	r := &reader{b: b}
	var s State
	s.Height = int64(r.u64())
	s.Round = int32(r.u32())
	s.Step = Step(r.u8())
	s.BlockID.Hash = clone(r.take(r.u8()))
	s.BlockID.PartsTotal = r.u32()
	s.BlockID.PartsHash = clone(r.take(r.u8()))
	s.SignBytes = clone(r.take(r.u16()))
	s.Signature = clone(r.take(r.u8()))
	if r.err != nil {
		return State{}, r.err
	}
	if len(r.b) != 0 {
		return State{}, errors.New("trailing bytes in payload")
	}
	// What MarshalState would refuse to write is no record either.
	if len(b) > maxPayload {
		return State{}, fmt.Errorf("payload of %d bytes exceeds %d", len(b), maxPayload)
	}
	if err := checkSizes(s); err != nil {
		return State{}, err
	}
	if err := validate(s); err != nil {
		return State{}, err
	}
	return s, nil
}

// checkSizes refuses fields larger than a slot holds.
func checkSizes(s State) error {
	if len(s.BlockID.Hash) > maxHashSize || len(s.BlockID.PartsHash) > maxHashSize || len(s.Signature) > maxSigSize {
		return errors.New("state has an oversized field")
	}
	return nil
}

func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

// validate rejects states no signer could have written.
func validate(s State) error {
	switch {
	case s.Height < 0:
		return fmt.Errorf("negative height %d", s.Height)
	case s.Round < 0:
		return fmt.Errorf("negative round %d", s.Round)
	case s.Step < StepNone || s.Step > StepPrecommit:
		return fmt.Errorf("unknown step %d", s.Step)
	}
	return nil
}
