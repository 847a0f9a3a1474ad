package enclaveproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
)

func header(magic, version byte, t Type, flags byte, id uint64, n uint32) []byte {
	h := []byte{magic, version, byte(t), flags}
	h = binary.BigEndian.AppendUint64(h, id)
	return binary.BigEndian.AppendUint32(h, n)
}

func frameOf(t Type, payload []byte) []byte {
	return append(header(Magic, Version, t, 0, 9, uint32(len(payload))), payload...)
}

func mustFrame(t *testing.T, m Message) []byte {
	t.Helper()
	f, err := marshal(m, 9)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// badFrames are inputs Read must refuse, with the error each must wrap.
// They double as FuzzRead seeds.
func badFrames(t *testing.T) []struct {
	name string
	in   []byte
	want error
} {
	good := mustFrame(t, &Error{Code: "internal", Message: "x"})
	lenAt := func(n uint32) []byte { // good's header with another length
		return append(header(Magic, Version, TypeError, 0, 9, n), good[HeaderSize:]...)
	}
	return []struct {
		name string
		in   []byte
		want error
	}{
		{"bad-empty", nil, io.EOF},
		{"bad-truncated-header", good[:7], io.ErrUnexpectedEOF},
		{"bad-truncated-payload", good[:len(good)-1], io.ErrUnexpectedEOF},
		{"bad-oversized-length", lenAt(MaxStatePayload + 1), ErrTooLarge},
		{"bad-4gib-length", lenAt(0xffffffff), ErrTooLarge},
		{"bad-magic", append([]byte{'{'}, good[1:]...), ErrVersion},
		{"bad-version", append([]byte{Magic, Version - 1}, good[2:]...), ErrVersion},
		{"bad-unknown-type", append(header(Magic, Version, 0x7f, 0, 9, 1), 0xa0), ErrUnexpectedType},
		{"bad-flags", append(header(Magic, Version, TypeAck, 1, 9, 1), 0xa0), ErrMalformed},
		{"bad-empty-payload", frameOf(TypeAck, nil), ErrMalformed},
		{"bad-not-a-map", frameOf(TypeAck, []byte{0x80}), ErrMalformed},
		// {"code": "internal", "msg": "x", "extra": 1}
		{"bad-unknown-field", frameOf(TypeError, []byte("\xa3\x63msg\x61x\x64code\x68internal\x65extra\x01")), ErrMalformed},
		// {"code": "internal", "code": "internal"}
		{"bad-duplicate-key", frameOf(TypeError, []byte("\xa2\x64code\x68internal\x64code\x68internal")), ErrMalformed},
		// Field names match case-sensitively only.
		{"bad-field-case", frameOf(TypeError, []byte("\xa1\x64CODE\x68internal")), ErrMalformed},
		{"bad-trailing-bytes", frameOf(TypeError, append(append([]byte{}, good[HeaderSize:]...), 0x00)), ErrMalformed},
		{"bad-indefinite-map", frameOf(TypeError, []byte("\xbf\x64code\x68internal\xff")), ErrMalformed},
		{"bad-indefinite-string", frameOf(TypeError, []byte("\xa1\x64code\x7f\x68internal\xff")), ErrMalformed},
		{"bad-tag", frameOf(TypeLogRecord, []byte("\xa1\x64time\xc1\x01")), ErrMalformed},
		{"bad-wrong-field-type", frameOf(TypeError, []byte("\xa1\x64code\x01")), ErrMalformed},
		{"bad-invalid-utf8", frameOf(TypeError, []byte("\xa1\x64code\x61\xff")), ErrMalformed},
		{"bad-deep-nesting", frameOf(TypeError, bytes.Repeat([]byte{0x81}, 20)), ErrMalformed},
		{"bad-short-seed", mustRawFrame(t, TypeImportKey, &ImportKey{Purpose: PurposeConsensus, Seed: make([]byte, 31)}), ErrMalformed},
		{"bad-error-code", frameOf(TypeError, []byte("\xa1\x64code\x63A B")), ErrMalformed},
		{"bad-unknown-reason", mustRawFrame(t, TypeRefused, &Refused{Reason: "double-sign"}), ErrMalformed},
		{"bad-signed-step", mustRawFrame(t, TypeSigned, &Signed{Height: 1, Step: 4}), ErrMalformed},
		{"bad-state-over-type-limit", header(Magic, Version, TypePersistState, 0, 9, MaxStatePayload+1), ErrTooLarge},
	}
}

// mustRawFrame encodes m without validating it, to build invalid frames.
func mustRawFrame(t *testing.T, typ Type, m Message) []byte {
	t.Helper()
	p, err := encMode.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return frameOf(typ, p)
}

func TestReadRefuses(t *testing.T) {
	for _, c := range badFrames(t) {
		t.Run(c.name, func(t *testing.T) {
			if *update {
				writeCorpus(t, c.name, c.in)
			}
			m, _, err := Read(bytes.NewReader(c.in), MaxConfigPayload)
			if !errors.Is(err, c.want) {
				t.Fatalf("Read = %v, %v; want error wrapping %v", m, err, c.want)
			}
			if m != nil {
				t.Errorf("Read returned a message (%v) with its error", m)
			}
		})
	}
}

// TestLengthCheckedBeforeAllocation gives Read a header claiming 4 GiB and
// nothing else: it must refuse from the header alone, allocating nothing
// in proportion to the claim.
func TestLengthCheckedBeforeAllocation(t *testing.T) {
	h := header(Magic, Version, TypeConfigure, 0, 1, 0xffffffff)
	allocs := testing.AllocsPerRun(20, func() {
		if _, _, err := Read(bytes.NewReader(h), MaxConfigPayload); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Read = %v, want ErrTooLarge", err)
		}
	})
	if allocs > 10 {
		t.Errorf("refusing a 4 GiB length took %v allocations", allocs)
	}
	// A limit below the type's own bound wins.
	h = header(Magic, Version, TypeConfigure, 0, 1, MaxStatePayload+1)
	if _, _, err := Read(bytes.NewReader(h), MaxStatePayload); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Read with the state limit = %v, want ErrTooLarge", err)
	}
}

// TestPayloadAllocatedAsItArrives gives Read a header declaring the largest
// config frame followed by 100 bytes: the frame must cost about what was
// sent, not the megabyte declared, or a peer stalling on such frames holds
// a megabyte per connection.
func TestPayloadAllocatedAsItArrives(t *testing.T) {
	frame := append(header(Magic, Version, TypeConfigure, 0, 1, MaxConfigPayload), make([]byte, 100)...)
	const runs = 10
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		if _, _, err := Read(bytes.NewReader(frame), MaxConfigPayload); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("Read of a truncated frame = %v, want io.ErrUnexpectedEOF", err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 2*payloadChunk {
		t.Errorf("a frame declaring %d bytes and carrying 100 cost %d bytes, want at most %d", MaxConfigPayload, per, 2*payloadChunk)
	}
}

// TestLargePayloadInPieces reads a payload many times payloadChunk,
// delivered a few bytes at a time, so the buffer grows while it is filled.
func TestLargePayloadInPieces(t *testing.T) {
	want := &GeneratedKey{SealedKey: seq(48, 0x10), PubKey: seq(32, 0xa0), Attestation: seq(5*payloadChunk+7, 0x80)}
	var buf bytes.Buffer
	if err := Write(&buf, want, 3); err != nil {
		t.Fatal(err)
	}
	m, id, err := Read(iotest.HalfReader(&buf), MaxConfigPayload)
	if err != nil {
		t.Fatal(err)
	}
	if id != 3 || !reflect.DeepEqual(m, want) {
		t.Errorf("got id %d and a message that differs from the one written", id)
	}
}

func TestWriteRefuses(t *testing.T) {
	cases := []struct {
		name string
		msg  Message
		want error
	}{
		{"invalid", &ImportKey{Purpose: PurposeConsensus, Seed: make([]byte, 16)}, ErrMalformed},
		{"half credentials", &GenerateKey{Purpose: PurposeConsensus, Credentials: Credentials{AccessKeyID: "AKIA"}}, ErrMalformed},
		{"unknown key type", &GenerateKey{Purpose: PurposeConsensus, KeyType: "sr25519"}, ErrMalformed},
		{"secp256k1 identity", &GenerateKey{Purpose: PurposeIdentity, KeyType: signer.KeyTypeSecp256k1}, ErrMalformed},
		{"secp256k1 identity import", &ImportKey{Purpose: PurposeIdentity, KeyType: signer.KeyTypeSecp256k1, Seed: make([]byte, 32)}, ErrMalformed},
		{"secp256k1 key typed ed25519", &GeneratedKey{SealedKey: []byte{1}, PubKey: secp256k1G}, ErrMalformed},
		{"ed25519 key typed secp256k1", &GeneratedKey{SealedKey: []byte{1}, PubKey: make([]byte, 32), KeyType: signer.KeyTypeSecp256k1}, ErrMalformed},
		{"secp256k1 point off the curve", &Configured{ConsensusPubKey: append([]byte{2}, bytes.Repeat([]byte{0xff}, 32)...), ConsensusKeyType: signer.KeyTypeSecp256k1}, ErrMalformed},
		{"too many attrs", &LogRecord{Attrs: make([]Attr, MaxLogAttrs+1)}, ErrMalformed},
		{"over type limit", &LogRecord{Message: strings.Repeat("x", MaxLogPayload)}, ErrTooLarge},
		{"state over limit", &PersistState{Record: make([]byte, MaxStatePayload)}, ErrTooLarge},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		if err := Write(&buf, c.msg, 1); !errors.Is(err, c.want) {
			t.Errorf("%s: Write = %v, want error wrapping %v", c.name, err, c.want)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: Write wrote %d bytes of a refused message", c.name, buf.Len())
		}
	}
	if err := Write(io.Discard, nil, 1); err == nil {
		t.Error("Write(nil) succeeded")
	}
}

// TestSlowWriter delivers a frame one byte per write, as a congested
// vsock might; Read must still decode it.
func TestSlowWriter(t *testing.T) {
	want := samples()[0]
	frame := mustFrame(t, want.msg)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	errc := make(chan error, 1)
	go func() {
		for i := range frame {
			if _, err := a.Write(frame[i : i+1]); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	m, id, err := Read(b, MaxConfigPayload)
	if err != nil {
		t.Fatal(err)
	}
	if id != 9 || !reflect.DeepEqual(m, want.msg) {
		t.Errorf("got id %d %#v, want %#v", id, m, want.msg)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestConsecutiveFrames checks that Read consumes exactly one frame.
func TestConsecutiveFrames(t *testing.T) {
	var buf bytes.Buffer
	for i, s := range samples() {
		if err := Write(&buf, s.msg, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range samples() {
		m, id, err := Read(&buf, MaxConfigPayload)
		if err != nil || id != uint64(i) || m.Type() != s.msg.Type() {
			t.Fatalf("frame %d: got %v id %d err %v", i, m, id, err)
		}
	}
	if _, _, err := Read(&buf, MaxConfigPayload); err != io.EOF {
		t.Fatalf("Read at end = %v, want io.EOF", err)
	}
}
