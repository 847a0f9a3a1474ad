package anchor

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// The few etcdserverpb messages the anchor exchanges, encoded and decoded
// by hand with protowire so that the enclave links neither etcd's API
// packages nor a protobuf runtime. Field numbers are those of etcd's
// api/v3/etcdserverpb/rpc.proto and api/v3/mvccpb/kv.proto (v3.7). Only
// the fields the anchor uses are read; every other field is skipped, as a
// protobuf decoder must, so that newer etcd versions still parse.

// Field numbers, from rpc.proto and kv.proto.
const (
	// TxnRequest
	txnCompare, txnSuccess, txnFailure protowire.Number = 1, 2, 3
	// Compare
	cmpTarget, cmpKey, cmpModRevision protowire.Number = 2, 3, 6
	// RequestOp (a oneof)
	opRequestRange, opRequestPut protowire.Number = 1, 2
	// PutRequest, RangeRequest
	putKey, putValue, rangeKey protowire.Number = 1, 2, 1
	// TxnResponse
	txnRespHeader, txnRespSucceeded, txnRespResponses protowire.Number = 1, 2, 3
	// ResponseHeader
	headerRevision protowire.Number = 3
	// ResponseOp (a oneof)
	opResponseRange protowire.Number = 1
	// RangeResponse
	rangeRespKvs protowire.Number = 2
	// mvccpb.KeyValue
	kvKey, kvModRevision, kvValue protowire.Number = 1, 3, 5
	// AuthenticateRequest, AuthenticateResponse
	authName, authPassword, authRespToken protowire.Number = 1, 2, 2
)

// compareTargetMod is Compare.CompareTarget MOD; CompareResult EQUAL is
// 0, proto3's default, so it is not written.
const compareTargetMod = 2

// errMalformed marks a reply that is not the protobuf message expected.
var errMalformed = errors.New("malformed protobuf")

// encodeTxnRequest is the anchor's one transaction: if key's mod revision
// is rev, put value at key, else read key.
func encodeTxnRequest(key, value []byte, rev int64) []byte {
	var cmp []byte
	cmp = appendVarint(cmp, cmpTarget, compareTargetMod)
	cmp = appendBytes(cmp, cmpKey, key)
	// mod_revision is a member of a oneof: it must be written even when
	// 0 (absent record), or etcd would compare the version instead.
	cmp = protowire.AppendTag(cmp, cmpModRevision, protowire.VarintType)
	cmp = protowire.AppendVarint(cmp, uint64(rev))

	var put []byte
	put = appendBytes(put, putKey, key)
	put = appendBytes(put, putValue, value)

	var rng []byte
	rng = appendBytes(rng, rangeKey, key)

	var b []byte
	b = protowire.AppendTag(b, txnCompare, protowire.BytesType)
	b = protowire.AppendBytes(b, cmp)
	b = protowire.AppendTag(b, txnSuccess, protowire.BytesType)
	b = protowire.AppendBytes(b, message(opRequestPut, put))
	b = protowire.AppendTag(b, txnFailure, protowire.BytesType)
	b = protowire.AppendBytes(b, message(opRequestRange, rng))
	return b
}

// encodeAuthenticateRequest asks for a token for user name.
func encodeAuthenticateRequest(name, password string) []byte {
	var b []byte
	b = appendBytes(b, authName, []byte(name))
	b = appendBytes(b, authPassword, []byte(password))
	return b
}

// message is a message holding only field num, an embedded message m
// (written even when empty: a oneof member is present or not).
func message(num protowire.Number, m []byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

// appendBytes writes a proto3 bytes or string field, omitted when empty
// as proto3 does.
func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// appendVarint writes a proto3 integer field, omitted when 0.
func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// txnResponse is the part of a TxnResponse the anchor reads.
type txnResponse struct {
	hasHeader bool
	revision  int64 // header.revision
	succeeded bool
	responses []responseOp
}

// responseOp is a ResponseOp; rng is nil unless it is a range response.
type responseOp struct {
	rng *rangeResponse
}

type rangeResponse struct {
	kvs []keyValue
}

type keyValue struct {
	key, value  []byte
	modRevision int64
}

// decodeTxnResponse parses a TxnResponse. Byte slices of the result
// point into b.
func decodeTxnResponse(b []byte) (*txnResponse, error) {
	r := &txnResponse{}
	err := fields(b, func(num protowire.Number, f field) error {
		switch num {
		case txnRespHeader:
			r.hasHeader = true
			return decodeHeader(f, &r.revision)
		case txnRespSucceeded:
			v, err := f.varint()
			r.succeeded = v != 0
			return err
		case txnRespResponses:
			op, err := decodeResponseOp(f)
			r.responses = append(r.responses, op)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("TxnResponse: %w", err)
	}
	return r, nil
}

// decodeHeader reads a ResponseHeader's revision into rev. Fields of an
// embedded message seen twice merge, as protobuf's do.
func decodeHeader(f field, rev *int64) error {
	return f.embedded(func(num protowire.Number, f field) error {
		if num == headerRevision {
			return f.revision(rev)
		}
		return nil
	})
}

func decodeResponseOp(f field) (responseOp, error) {
	var op responseOp
	err := f.embedded(func(num protowire.Number, f field) error {
		switch num {
		case opResponseRange:
			if op.rng == nil {
				op.rng = &rangeResponse{}
			}
			return decodeRangeResponse(f, op.rng)
		case 2, 3, 4: // the oneof's other members: the last one wins
			op.rng = nil
			_, err := f.bytes()
			return err
		}
		return nil
	})
	return op, err
}

func decodeRangeResponse(f field, r *rangeResponse) error {
	return f.embedded(func(num protowire.Number, f field) error {
		if num != rangeRespKvs {
			return nil
		}
		kv, err := decodeKeyValue(f)
		r.kvs = append(r.kvs, kv)
		return err
	})
}

func decodeKeyValue(f field) (keyValue, error) {
	var kv keyValue
	err := f.embedded(func(num protowire.Number, f field) error {
		var err error
		switch num {
		case kvKey:
			kv.key, err = f.bytes()
		case kvValue:
			kv.value, err = f.bytes()
		case kvModRevision:
			err = f.revision(&kv.modRevision)
		}
		return err
	})
	return kv, err
}

// decodeAuthenticateResponse returns an AuthenticateResponse's token.
func decodeAuthenticateResponse(b []byte) (string, error) {
	var token []byte
	err := fields(b, func(num protowire.Number, f field) error {
		var err error
		if num == authRespToken {
			token, err = f.bytes()
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("AuthenticateResponse: %w", err)
	}
	return string(token), nil
}

// field is one field's value as it was on the wire.
type field struct {
	typ protowire.Type
	v   uint64 // VarintType
	b   []byte // BytesType
}

// varint is the value of an integer or bool field; another wire type is
// an error, not a silent zero, so a reply etcd did not send is refused.
func (f field) varint() (uint64, error) {
	if f.typ != protowire.VarintType {
		return 0, fmt.Errorf("%w: wire type %d where a varint belongs", errMalformed, f.typ)
	}
	return f.v, nil
}

// bytes is the value of a bytes, string or message field.
func (f field) bytes() ([]byte, error) {
	if f.typ != protowire.BytesType {
		return nil, fmt.Errorf("%w: wire type %d where bytes belong", errMalformed, f.typ)
	}
	return f.b, nil
}

// revision reads an etcd revision: an int64 that is never negative.
func (f field) revision(rev *int64) error {
	v, err := f.varint()
	if err != nil {
		return err
	}
	if int64(v) < 0 {
		return fmt.Errorf("%w: negative revision %d", errMalformed, int64(v))
	}
	*rev = int64(v)
	return nil
}

// embedded is fields over f, a field holding an embedded message.
func (f field) embedded(fn func(protowire.Number, field) error) error {
	m, err := f.bytes()
	if err != nil {
		return err
	}
	return fields(m, fn)
}

// fields calls fn with each field of message b in order; fn ignores the
// numbers it does not know. Only varint and bytes values are kept (no
// field the anchor reads has another type). It fails on any malformed
// input.
func fields(b []byte, fn func(protowire.Number, field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %v", errMalformed, protowire.ParseError(n))
		}
		b = b[n:]
		f := field{typ: typ}
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("%w: field %d: %v", errMalformed, num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, f); err != nil {
			return fmt.Errorf("field %d: %w", num, err)
		}
	}
	return nil
}
