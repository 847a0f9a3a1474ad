package attestation_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/tmkms-nitro/tmkms-nitro/internal/attestation"
)

func TestVerifyAccepts(t *testing.T) {
	c := newChain(t)
	base := c.entries()
	opts := attestation.Options{Roots: []*x509.Certificate{c.root}, CurrentTime: c.now}
	many := map[uint64][]byte{}
	for i := range uint64(32) {
		many[i] = make([]byte, 48)
	}
	tests := []struct {
		name string
		doc  []byte
		opts attestation.Options
		// want checks the decoded document.
		want func(*attestation.Document) bool
	}{
		{"valid", c.doc(t, base), opts, func(d *attestation.Document) bool {
			return string(d.UserData) == "user data" && string(d.Nonce) == "nonce" && d.PublicKey == nil &&
				d.PCRs[0][0] == 0xaa && len(d.PCRs) == 16 && d.Timestamp.Equal(c.now)
		}},
		{"tagged", append([]byte{0xd2}, c.doc(t, base)...), opts, nil},
		{"optional fields omitted", c.doc(t, remove(remove(remove(base, "nonce"), "user_data"), "public_key")), opts,
			func(d *attestation.Document) bool { return d.Nonce == nil && d.UserData == nil && d.PublicKey == nil }},
		{"empty optional is absent", c.doc(t, replace(base, "nonce", []byte{})), opts,
			func(d *attestation.Document) bool { return d.Nonce == nil }},
		{"optional at limit", c.doc(t, replace(base, "public_key", make([]byte, 1024))), opts,
			func(d *attestation.Document) bool { return len(d.PublicKey) == 1024 }},
		{"32 PCRs", c.doc(t, replace(base, "pcrs", many)), opts,
			func(d *attestation.Document) bool { return len(d.PCRs) == 32 }},
		{"keys in another order", c.doc(t, append(base[1:], base[0])), opts, nil},
		{"root among several", c.doc(t, base), attestation.Options{
			Roots: []*x509.Certificate{newChain(t).root, c.root}, CurrentTime: c.now,
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := attestation.Verify(tt.doc, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != nil && !tt.want(d) {
				t.Errorf("unexpected document %+v", d)
			}
		})
	}
}

func TestVerifyDoesNotAliasInput(t *testing.T) {
	c := newChain(t)
	doc := c.doc(t, c.entries())
	d, err := attestation.Verify(doc, attestation.Options{Roots: []*x509.Certificate{c.root}, CurrentTime: c.now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range doc {
		doc[i] = 0
	}
	if string(d.UserData) != "user data" || d.PCRs[0][0] != 0xaa {
		t.Error("Document shares memory with the input")
	}
}

type refusal struct {
	name  string
	doc   []byte
	opts  *attestation.Options // nil: the chain's root at its time
	want  error
	field string // FieldError.Field, if the refusal is a field check
	cause any    // pointer to an error type the error must wrap
}

func TestVerifyRefuses(t *testing.T) {
	c := newChain(t)
	base := c.entries()
	valid := c.doc(t, base)
	body := encodeMap(t, base)
	other := newChain(t)
	at := func(d time.Duration) *attestation.Options {
		return &attestation.Options{Roots: []*x509.Certificate{c.root}, CurrentTime: c.now.Add(d)}
	}
	tampered := bytes.Clone(valid)
	tampered[len(tampered)-1] ^= 1
	pcrs := func(edit func(map[uint64][]byte)) map[uint64][]byte {
		m := map[uint64][]byte{}
		for i := range uint64(16) {
			m[i] = make([]byte, 48)
		}
		edit(m)
		return m
	}
	var (
		dup      *cbor.DupMapKeyError
		indef    *cbor.IndefiniteLengthError
		unknown  *cbor.UnknownFieldError
		typeErr  *cbor.UnmarshalTypeError
		extra    *cbor.ExtraneousDataError
		tagErr   *cbor.TagsMdError
		mapPairs *cbor.MaxMapPairsError
		arrElems *cbor.MaxArrayElementsError
	)
	tests := []refusal{
		// Signature.
		{name: "tampered signature", doc: tampered, want: attestation.ErrBadSignature},
		{name: "signed by another key", doc: coseSign1(t, protectedES384, []byte{0xa0}, body, es384(t, p384Key(t), protectedES384, body)), want: attestation.ErrBadSignature},
		{name: "95-byte signature", doc: coseSign1(t, protectedES384, []byte{0xa0}, body, make([]byte, 95)), want: attestation.ErrBadSignature},
		{name: "97-byte signature", doc: coseSign1(t, protectedES384, []byte{0xa0}, body, make([]byte, 97)), want: attestation.ErrBadSignature},
		{name: "DER signature length", doc: coseSign1(t, protectedES384, []byte{0xa0}, body, make([]byte, 104)), want: attestation.ErrBadSignature},
		{name: "payload changed after signing", doc: coseSign1(t, protectedES384, []byte{0xa0}, encodeMap(t, replace(base, "nonce", []byte("other"))), es384(t, c.leafKey.(*ecdsa.PrivateKey), protectedES384, body)), want: attestation.ErrBadSignature},

		// Chain.
		{name: "wrong root", doc: valid, opts: &attestation.Options{Roots: []*x509.Certificate{other.root}, CurrentTime: c.now}, want: attestation.ErrUntrustedChain},
		{name: "AWS root for a test document", doc: valid, opts: &attestation.Options{CurrentTime: c.now}, want: attestation.ErrUntrustedChain},
		{name: "nil root", doc: valid, opts: &attestation.Options{Roots: []*x509.Certificate{nil}}, want: attestation.ErrUntrustedChain},
		{name: "cabundle[0] not the root", doc: c.doc(t, replace(base, "cabundle", [][]byte{c.inter.Raw, c.inter.Raw})), want: attestation.ErrUntrustedChain},
		{name: "leaf from another chain", doc: c.doc(t, replace(base, "certificate", other.leaf.Raw)), want: attestation.ErrUntrustedChain},
		{name: "intermediate missing", doc: c.doc(t, replace(base, "cabundle", [][]byte{c.root.Raw})), want: attestation.ErrUntrustedChain},
		{name: "leaf is a CA", doc: c.leafDoc(t, p384Key(t), func(l *x509.Certificate) { l.IsCA = true }), want: attestation.ErrUntrustedChain},
		{name: "leaf without digitalSignature", doc: c.leafDoc(t, p384Key(t), func(l *x509.Certificate) { l.KeyUsage = x509.KeyUsageKeyAgreement }), want: attestation.ErrUntrustedChain},
		{name: "expired leaf", doc: valid, opts: at(4 * time.Hour), want: attestation.ErrExpired},
		{name: "leaf not yet valid", doc: valid, opts: at(-2 * time.Hour), want: attestation.ErrExpired},

		// Algorithms.
		{name: "P-256 leaf", doc: c.leafDoc(t, ecKey(t, elliptic.P256()), nil), want: attestation.ErrUnsupportedAlgorithm},
		{name: "P-521 leaf", doc: c.leafDoc(t, ecKey(t, elliptic.P521()), nil), want: attestation.ErrUnsupportedAlgorithm},
		{name: "Ed25519 leaf", doc: c.leafDoc(t, ed25519Key(t), nil), want: attestation.ErrUnsupportedAlgorithm},
		{name: "leaf signed with SHA-256", doc: c.leafDoc(t, p384Key(t), func(l *x509.Certificate) { l.SignatureAlgorithm = x509.ECDSAWithSHA256 }), want: attestation.ErrUnsupportedAlgorithm},
		{name: "alg ES256", doc: c.sign(t, []byte{0xa1, 0x01, 0x26}, body), want: attestation.ErrUnsupportedAlgorithm},
		{name: "alg as text", doc: c.sign(t, append([]byte{0xa1, 0x01, 0x65}, "ES384"...), body), want: attestation.ErrUnsupportedAlgorithm},
		{name: "non-minimal alg encoding", doc: c.sign(t, []byte{0xa1, 0x01, 0x39, 0x00, 0x22}, body), want: attestation.ErrUnsupportedAlgorithm},
		{name: "empty protected header", doc: c.sign(t, nil, body), want: attestation.ErrUnsupportedAlgorithm},

		// COSE structure.
		{name: "empty input", doc: nil, want: attestation.ErrMalformed},
		{name: "oversized", doc: append(bytes.Clone(valid), make([]byte, attestation.MaxDocumentSize)...), want: attestation.ErrMalformed},
		{name: "trailing byte", doc: append(bytes.Clone(valid), 0), want: attestation.ErrMalformed, cause: &extra},
		{name: "non-canonical tag 18", doc: append([]byte{0xd8, 0x12}, valid...), want: attestation.ErrMalformed, cause: &tagErr},
		{name: "tag 98", doc: append([]byte{0xd8, 0x62}, valid...), want: attestation.ErrMalformed, cause: &tagErr},
		{name: "tag 18 twice", doc: append([]byte{0xd2, 0xd2}, valid...), want: attestation.ErrMalformed, cause: &tagErr},
		{name: "three-element array", doc: mustCBOR(t, []any{protectedES384, cbor.RawMessage{0xa0}, body}), want: attestation.ErrMalformed},
		{name: "five-element array", doc: mustCBOR(t, []any{protectedES384, cbor.RawMessage{0xa0}, body, make([]byte, 96), 0}), want: attestation.ErrMalformed},
		{name: "indefinite-length COSE array", doc: append(append([]byte{0x9f}, valid[1:]...), 0xff), want: attestation.ErrMalformed, cause: &indef},
		{name: "unprotected header not empty", doc: coseSign1(t, protectedES384, []byte{0xa1, 0x04, 0x41, 0x01}, body, es384(t, c.leafKey.(*ecdsa.PrivateKey), protectedES384, body)), want: attestation.ErrMalformed},
		{name: "unprotected header an array", doc: coseSign1(t, protectedES384, []byte{0x80}, body, make([]byte, 96)), want: attestation.ErrMalformed},
		{name: "empty payload", doc: c.sign(t, protectedES384, nil), want: attestation.ErrMalformed},
		{name: "payload not a map", doc: c.sign(t, protectedES384, mustCBOR(t, []any{"module_id"})), want: attestation.ErrMalformed, cause: &typeErr},

		// Payload CBOR.
		{name: "duplicate key", doc: c.doc(t, append(base, entry{"digest", "SHA384"})), want: attestation.ErrMalformed, cause: &dup},
		{name: "duplicate PCR index", doc: c.sign(t, protectedES384, dupPCRPayload(t, base)), want: attestation.ErrMalformed, cause: &dup},
		{name: "indefinite-length payload map", doc: c.sign(t, protectedES384, append(append([]byte{0xbf}, body[1:]...), 0xff)), want: attestation.ErrMalformed, cause: &indef},
		{name: "indefinite-length byte string", doc: c.doc(t, replace(base, "nonce", cbor.RawMessage{0x5f, 0x41, 0x01, 0xff})), want: attestation.ErrMalformed, cause: &indef},
		{name: "unknown field", doc: c.doc(t, append(base, entry{"extra", 1})), want: attestation.ErrMalformed, cause: &unknown},
		{name: "key in another case", doc: c.doc(t, append(remove(base, "module_id"), entry{"Module_ID", "x"})), want: attestation.ErrMalformed, cause: &unknown},
		{name: "integer key", doc: c.doc(t, append(base, entry{1, "x"})), want: attestation.ErrMalformed},
		{name: "tag in payload", doc: c.doc(t, replace(base, "timestamp", cbor.RawMessage{0xc1, 0x1a, 0x65, 0x00, 0x00, 0x00})), want: attestation.ErrMalformed, cause: &tagErr},
		{name: "module_id as bytes", doc: c.doc(t, replace(base, "module_id", []byte("i-0"))), want: attestation.ErrMalformed, cause: &typeErr},
		{name: "negative timestamp", doc: c.doc(t, replace(base, "timestamp", -1)), want: attestation.ErrMalformed, cause: &typeErr},
		{name: "undefined nonce", doc: c.doc(t, replace(base, "nonce", cbor.RawMessage{0xf7})), want: attestation.ErrMalformed},
		{name: "33 PCRs", doc: c.doc(t, replace(base, "pcrs", pcrs(func(m map[uint64][]byte) {
			for i := range uint64(33) {
				m[i] = make([]byte, 48)
			}
		}))), want: attestation.ErrMalformed, cause: &mapPairs},
		{name: "empty cabundle", doc: c.doc(t, replace(base, "cabundle", [][]byte{})), want: attestation.ErrMalformed, field: "cabundle"},
		{name: "too many cabundle entries", doc: c.doc(t, replace(base, "cabundle", make([][]byte, 17))), want: attestation.ErrMalformed, cause: &arrElems},

		// Payload fields.
		{name: "missing module_id", doc: c.doc(t, remove(base, "module_id")), want: attestation.ErrMalformed, field: "module_id"},
		{name: "null module_id", doc: c.doc(t, replace(base, "module_id", nil)), want: attestation.ErrMalformed, field: "module_id"},
		{name: "missing digest", doc: c.doc(t, remove(base, "digest")), want: attestation.ErrMalformed, field: "digest"},
		{name: "wrong digest", doc: c.doc(t, replace(base, "digest", "SHA256")), want: attestation.ErrMalformed, field: "digest"},
		{name: "missing timestamp", doc: c.doc(t, remove(base, "timestamp")), want: attestation.ErrMalformed, field: "timestamp"},
		{name: "timestamp beyond int64", doc: c.doc(t, replace(base, "timestamp", uint64(math.MaxUint64))), want: attestation.ErrMalformed, field: "timestamp"},
		{name: "missing pcrs", doc: c.doc(t, remove(base, "pcrs")), want: attestation.ErrMalformed, field: "pcrs"},
		{name: "no PCRs", doc: c.doc(t, replace(base, "pcrs", map[uint64][]byte{})), want: attestation.ErrMalformed, field: "pcrs"},
		{name: "PCR of 32 bytes", doc: c.doc(t, replace(base, "pcrs", pcrs(func(m map[uint64][]byte) { m[3] = make([]byte, 32) }))), want: attestation.ErrMalformed, field: "pcrs"},
		{name: "PCR of 64 bytes", doc: c.doc(t, replace(base, "pcrs", pcrs(func(m map[uint64][]byte) { m[3] = make([]byte, 64) }))), want: attestation.ErrMalformed, field: "pcrs"},
		{name: "PCR index 32", doc: c.doc(t, replace(base, "pcrs", pcrs(func(m map[uint64][]byte) { m[32] = make([]byte, 48) }))), want: attestation.ErrMalformed, field: "pcrs"},
		{name: "missing certificate", doc: c.doc(t, remove(base, "certificate")), want: attestation.ErrMalformed, field: "certificate"},
		{name: "certificate too large", doc: c.doc(t, replace(base, "certificate", make([]byte, 1025))), want: attestation.ErrMalformed, field: "certificate"},
		{name: "certificate not DER", doc: c.doc(t, replace(base, "certificate", []byte{0x30, 0x00})), want: attestation.ErrMalformed, field: "certificate"},
		{name: "missing cabundle", doc: c.doc(t, remove(base, "cabundle")), want: attestation.ErrMalformed, field: "cabundle"},
		{name: "empty cabundle entry", doc: c.doc(t, replace(base, "cabundle", [][]byte{c.root.Raw, {}})), want: attestation.ErrMalformed, field: "cabundle"},
		{name: "cabundle intermediate not DER", doc: c.doc(t, replace(base, "cabundle", [][]byte{c.root.Raw, {0x30, 0x00}})), want: attestation.ErrMalformed, field: "cabundle"},
		{name: "public_key too large", doc: c.doc(t, replace(base, "public_key", make([]byte, 1025))), want: attestation.ErrMalformed, field: "public_key"},
		{name: "user_data too large", doc: c.doc(t, replace(base, "user_data", make([]byte, 1025))), want: attestation.ErrMalformed, field: "user_data"},
		{name: "nonce too large", doc: c.doc(t, replace(base, "nonce", make([]byte, 1025))), want: attestation.ErrMalformed, field: "nonce"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := attestation.Options{Roots: []*x509.Certificate{c.root}, CurrentTime: c.now}
			if tt.opts != nil {
				opts = *tt.opts
			}
			doc, err := attestation.Verify(tt.doc, opts)
			checkRefused(t, doc, err, tt.want)
			checkField(t, err, tt.field)
			if tt.cause != nil && !errors.As(err, tt.cause) {
				t.Errorf("err = %v, want it to wrap %T", err, tt.cause)
			}
		})
	}
}

func checkField(t *testing.T, err error, field string) {
	t.Helper()
	var fe *attestation.FieldError
	switch {
	case field == "" && errors.As(err, &fe):
		t.Errorf("unexpected field error %v", err)
	case field != "" && !errors.As(err, &fe):
		t.Errorf("err = %v, want a FieldError for %q", err, field)
	case field != "" && fe.Field != field:
		t.Errorf("FieldError.Field = %q, want %q (%v)", fe.Field, field, err)
	}
}
