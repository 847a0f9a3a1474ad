package enclaveproto

import (
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Type is a message type code, the third byte of a frame.
type Type uint8

// Message type codes. The high nibble names the channel: 0x0_ any channel,
// 0x1_ config, 0x2_ state, 0x3_ log. Codes are never reused.
const (
	TypeError          Type = 0x01
	TypeAck            Type = 0x02
	TypeConfigure      Type = 0x10
	TypeConfigured     Type = 0x11
	TypeGenerateKey    Type = 0x12
	TypeImportKey      Type = 0x13
	TypeGeneratedKey   Type = 0x14
	TypeSealAnchor     Type = 0x16
	TypeStateSnapshot  Type = 0x20
	TypePersistState   Type = 0x21
	TypeStateAck       Type = 0x22
	TypeCommitDecision Type = 0x23
	TypeCommitResult   Type = 0x24
	TypeLogRecord      Type = 0x30
	TypeSigned         Type = 0x31
	TypeRefused        Type = 0x32
)

// newMessage returns a zero message of type t to decode into.
func newMessage(t Type) (Message, bool) {
	switch t {
	case TypeError:
		return new(Error), true
	case TypeAck:
		return new(Ack), true
	case TypeConfigure:
		return new(Configure), true
	case TypeConfigured:
		return new(Configured), true
	case TypeGenerateKey:
		return new(GenerateKey), true
	case TypeImportKey:
		return new(ImportKey), true
	case TypeGeneratedKey:
		return new(GeneratedKey), true
	case TypeSealAnchor:
		return new(SealAnchor), true
	case TypeStateSnapshot:
		return new(StateSnapshot), true
	case TypePersistState:
		return new(PersistState), true
	case TypeStateAck:
		return new(StateAck), true
	case TypeCommitDecision:
		return new(CommitDecision), true
	case TypeCommitResult:
		return new(CommitResult), true
	case TypeLogRecord:
		return new(LogRecord), true
	case TypeSigned:
		return new(Signed), true
	case TypeRefused:
		return new(Refused), true
	}
	return nil, false
}

// String returns the message type's name, or its code if unknown.
func (t Type) String() string {
	switch t {
	case TypeError:
		return "Error"
	case TypeAck:
		return "Ack"
	case TypeConfigure:
		return "Configure"
	case TypeConfigured:
		return "Configured"
	case TypeGenerateKey:
		return "GenerateKey"
	case TypeImportKey:
		return "ImportKey"
	case TypeGeneratedKey:
		return "GeneratedKey"
	case TypeSealAnchor:
		return "SealAnchor"
	case TypeStateSnapshot:
		return "StateSnapshot"
	case TypePersistState:
		return "PersistState"
	case TypeStateAck:
		return "StateAck"
	case TypeCommitDecision:
		return "CommitDecision"
	case TypeCommitResult:
		return "CommitResult"
	case TypeLogRecord:
		return "LogRecord"
	case TypeSigned:
		return "Signed"
	case TypeRefused:
		return "Refused"
	}
	return fmt.Sprintf("type 0x%02x", uint8(t))
}

// MaxPayload is the largest payload a message of type t may have: the limit
// of the channel it travels on. Error and Ack travel on several channels and
// get the smallest of their limits.
func MaxPayload(t Type) int {
	switch {
	case t >= TypeLogRecord && t <= TypeRefused:
		return MaxLogPayload
	case t >= TypeConfigure && t <= TypeSealAnchor:
		return MaxConfigPayload
	}
	return MaxStatePayload
}

// The CBOR modes are built once and never changed (cbor modes are
// immutable and safe for concurrent use).
var (
	encMode = mustEncMode()
	decMode = mustDecMode()
)

func mustEncMode() cbor.EncMode {
	opts := cbor.CoreDetEncOptions()
	// RFC 3339 text in UTC (the content of CBOR tag 0, without the tag):
	// nanosecond precision, readable in a hex dump, and the zero time
	// ("0001-01-01T00:00:00Z") survives a round trip.
	opts.Time = cbor.TimeRFC3339NanoUTC
	opts.TimeTag = cbor.EncTagNone
	em, err := opts.EncMode()
	if err != nil {
		panic("enclaveproto: internal error: bad CBOR encoding options: " + err.Error())
	}
	return em
}

func mustDecMode() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   8,
		MaxArrayElements:  256,
		MaxMapPairs:       32,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		FieldNameMatching: cbor.FieldNameMatchingCaseSensitive,
		UTF8:              cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic("enclaveproto: internal error: bad CBOR decoding options: " + err.Error())
	}
	return dm
}

// unmarshal decodes and checks a payload of type t.
func unmarshal(t Type, payload []byte) (Message, error) {
	m, ok := newMessage(t)
	if !ok {
		return nil, fmt.Errorf("enclaveproto: unknown message type 0x%02x: %w", uint8(t), ErrUnexpectedType)
	}
	if err := decMode.Unmarshal(payload, m); err != nil {
		return nil, fmt.Errorf("enclaveproto: failed to decode %s: %w: %v", t, ErrMalformed, err)
	}
	if n, ok := m.(normalizer); ok {
		n.normalize()
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("enclaveproto: invalid %s: %w", t, err)
	}
	return m, nil
}

// invalid builds a validation error; validation failures are malformed
// input to a reader and a programming error to a writer.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// checkTime refuses times that RFC 3339 cannot carry, so everything that
// decodes also encodes.
func checkTime(field string, t time.Time) error {
	if y := t.Year(); y < 1 || y > 9999 {
		return invalid("%s: year %d is outside 1..9999", field, y)
	}
	return nil
}
