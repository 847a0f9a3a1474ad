package cms

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseVectors(t *testing.T) {
	for _, v := range loadParseVectors(t) {
		t.Run(v.name, func(t *testing.T) {
			env, err := Parse(v.envelope)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			check := func(field string, got, want []byte) {
				if !bytes.Equal(got, want) {
					t.Errorf("%s = %x, want %x", field, got, want)
				}
			}
			check("EncryptedKey", env.EncryptedKey, v.encryptedKey)
			check("IV", env.IV, v.iv)
			check("Ciphertext", env.Ciphertext, v.ciphertext)
			// The rid sits at a fixed place in KMS's layout: after
			// 30 80 06 09 <9> a0 80 30 80 02 01 02 31 82 01 6b 30 82 01 67 02 01 02 80 20.
			check("RecipientKeyID", env.RecipientKeyID[:], v.envelope[33:65])
		})
	}
}

func TestParseDoesNotAlias(t *testing.T) {
	v, _ := loadKMSVector(t)
	in := bytes.Clone(v.Envelope)
	env, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	before := *env
	before.EncryptedKey, before.IV, before.Ciphertext = bytes.Clone(env.EncryptedKey), bytes.Clone(env.IV), bytes.Clone(env.Ciphertext)
	clear(in)
	if !bytes.Equal(env.EncryptedKey, before.EncryptedKey) || !bytes.Equal(env.IV, before.IV) || !bytes.Equal(env.Ciphertext, before.Ciphertext) {
		t.Fatal("Envelope aliases the input")
	}
}

func TestParseAcceptsDefiniteLengths(t *testing.T) {
	v, key := loadKMSVector(t)
	root, err := parseBER(v.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(toDefinite(root), key)
	if err != nil {
		t.Fatalf("Open(definite form): %v", err)
	}
	if !bytes.Equal(got, v.Plaintext) {
		t.Fatalf("Open(definite form) = %x, want %x", got, v.Plaintext)
	}
}

func TestParseRefusesWrongShape(t *testing.T) {
	otherOID := definite(tagOID, []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01}) // rsaEncryption
	sha1AlgID := definite(tagSequence, definite(tagOID, []byte{0x2b, 0x0e, 0x03, 0x02, 0x1a}), asn1NULL)
	tests := []struct {
		name   string
		mutate func(*layout)
		want   error
		in     string // must appear in the message
	}{
		{"content type signedData", func(l *layout) {
			l.contentType = definite(tagOID, []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02})
		}, ErrUnsupported, "ContentInfo.contentType: OID 1.2.840.113549.1.7.2"},
		{"content type invalid OID", func(l *layout) { l.contentType = definite(tagOID, []byte{0x2a, 0x86}) }, ErrUnsupported, "OID 0x2a86, want 1.2.840.113549.1.7.3"},
		{"content type not an OID", func(l *layout) { l.contentType = definite(tagInteger, []byte{1}) }, ErrMalformed, "ContentInfo.contentType: tag 0x02"},
		{"EnvelopedData version 0", func(l *layout) { l.version = definite(tagInteger, []byte{0}) }, ErrUnsupported, "EnvelopedData.version"},
		{"EnvelopedData version not an INTEGER", func(l *layout) { l.version = definite(tagOctetString, []byte{2}) }, ErrMalformed, "EnvelopedData.version: tag 0x04"},
		{"EnvelopedData version non-minimal", func(l *layout) { l.version = definite(tagInteger, []byte{0, 2}) }, ErrUnsupported, "EnvelopedData.version"},
		{"originatorInfo present", func(l *layout) { l.originator = definite(tagExplicit0) }, ErrUnsupported, "originatorInfo"},
		{"unprotectedAttrs present", func(l *layout) { l.unprotected = definite(tagExplicit1) }, ErrUnsupported, "unprotectedAttrs"},
		{"no recipients", func(l *layout) { l.recipients = [][]byte{} }, ErrUnsupported, "has 0 recipients"},
		{"two recipients", func(l *layout) {
			ri := definite(tagSequence, l.ktri.version, l.ktri.rid, l.ktri.alg, l.ktri.key)
			l.recipients = [][]byte{ri, ri}
		}, ErrUnsupported, "has 2 recipients"},
		{"KeyAgreeRecipientInfo", func(l *layout) { l.recipients = [][]byte{definite(tagExplicit1, l.ktri.version)} }, ErrUnsupported, "not KeyTransRecipientInfo"},
		{"KeyTransRecipientInfo version 0", func(l *layout) { l.ktri.version = definite(tagInteger, []byte{0}) }, ErrUnsupported, "KeyTransRecipientInfo.version"},
		{"rid issuerAndSerialNumber", func(l *layout) {
			l.ktri.rid = definite(tagSequence, definite(tagSequence), definite(tagInteger, []byte{1}))
		}, ErrUnsupported, "not a subjectKeyIdentifier"},
		{"rid SHA-1 sized", func(l *layout) { l.ktri.rid = definite(tagImplicit0, make([]byte, 20)) }, ErrUnsupported, "rid: is 20 bytes"},
		{"key encryption rsaEncryption", func(l *layout) { l.ktri.alg = definite(tagSequence, otherOID, asn1NULL) }, ErrUnsupported, "OID 1.2.840.113549.1.1.1, want 1.2.840.113549.1.1.7"},
		{"OAEP with SHA-1", func(l *layout) {
			l.ktri.alg = definite(tagSequence, definite(tagOID, oidRSAESOAEP), definite(tagSequence, definite(tagExplicit0, sha1AlgID)))
		}, ErrUnsupported, "RSAES-OAEP parameters"},
		{"OAEP default parameters", func(l *layout) {
			l.ktri.alg = definite(tagSequence, definite(tagOID, oidRSAESOAEP), definite(tagSequence))
		}, ErrUnsupported, "RSAES-OAEP parameters"},
		{"OAEP with label", func(l *layout) {
			label := definite(0xa2, definite(tagSequence, definite(tagOID, []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x09}), definite(tagOctetString, []byte("x"))))
			params := definite(tagSequence, definite(tagExplicit0, sha256AlgID), definite(tagExplicit1, definite(tagSequence, definite(tagOID, oidMGF1), sha256AlgID)), label)
			l.ktri.alg = definite(tagSequence, definite(tagOID, oidRSAESOAEP), params)
		}, ErrUnsupported, "RSAES-OAEP parameters"},
		{"key encryption algorithm empty", func(l *layout) { l.ktri.alg = definite(tagSequence) }, ErrMalformed, "has no algorithm"},
		{"key encryption algorithm not a SEQUENCE", func(l *layout) { l.ktri.alg = definite(tagOID, oidRSAESOAEP) }, ErrMalformed, "keyEncryptionAlgorithm: tag 0x06"},
		{"encryptedKey empty", func(l *layout) { l.ktri.key = definite(tagOctetString) }, ErrMalformed, "encryptedKey: is empty"},
		{"encryptedKey wrong tag", func(l *layout) { l.ktri.key = definite(tagInteger, []byte{1}) }, ErrMalformed, "encryptedKey: tag 0x02"},
		{"KeyTransRecipientInfo missing field", func(l *layout) {
			l.recipients = [][]byte{definite(tagSequence, l.ktri.version, l.ktri.rid, l.ktri.alg)}
		}, ErrMalformed, "has 3 fields, want 4"},
		{"content type not data", func(l *layout) { l.eci.contentType = definite(tagOID, oidEnvelopedData) }, ErrUnsupported, "EncryptedContentInfo.contentType"},
		{"content encryption AES-128-CBC", func(l *layout) {
			l.eci.alg = definite(tagSequence, definite(tagOID, []byte{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02}), definite(tagOctetString, make([]byte, 16)))
		}, ErrUnsupported, "OID 2.16.840.1.101.3.4.1.2, want 2.16.840.1.101.3.4.1.42"},
		{"IV of 8 bytes", func(l *layout) {
			l.eci.alg = definite(tagSequence, definite(tagOID, oidAES256CBC), definite(tagOctetString, make([]byte, 8)))
		}, ErrMalformed, "iv: is 8 bytes, want 16"},
		{"IV not an OCTET STRING", func(l *layout) {
			l.eci.alg = definite(tagSequence, definite(tagOID, oidAES256CBC), definite(tagInteger, make([]byte, 16)))
		}, ErrMalformed, "iv: tag 0x02"},
		{"IV missing", func(l *layout) { l.eci.alg = definite(tagSequence, definite(tagOID, oidAES256CBC)) }, ErrMalformed, "has 1 fields, want 2"},
		{"encryptedContent missing", func(l *layout) { l.eci.content = nil }, ErrMalformed, "EncryptedContentInfo: has 2 fields, want 3"},
		{"encryptedContent not block aligned", func(l *layout) { l.eci.content = definite(tagImplicit0, make([]byte, 47)) }, ErrMalformed, "ciphertext is 47 bytes"},
		{"encryptedContent empty", func(l *layout) { l.eci.content = indefinite(tagExplicit0) }, ErrMalformed, "ciphertext is 0 bytes"},
		{"encryptedContent nested chunk", func(l *layout) {
			l.eci.content = indefinite(tagExplicit0, indefinite(0x24, definite(tagOctetString, make([]byte, 16))))
		}, ErrUnsupported, "chunk has tag 0x24"},
		{"encryptedContent wrong tag", func(l *layout) { l.eci.content = definite(tagOctetString, make([]byte, 16)) }, ErrMalformed, "encryptedContent: tag 0x04"},
		{"trailing bytes", func(l *layout) { l.trailing = []byte{0} }, ErrMalformed, "1 bytes of trailing data"},
		{"trailing element", func(l *layout) { l.trailing = definite(tagOctetString, []byte{1}) }, ErrMalformed, "3 bytes of trailing data"},
	}
	base := kmsLayout(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := base
			tt.mutate(&l)
			assertRefused(t, l.encode(), tt.want, tt.in)
		})
	}
}

func TestParseRefusesBadBER(t *testing.T) {
	deep := bytes.Repeat([]byte{tagSequence, 0x80}, maxDepth+2)
	tests := []struct {
		name string
		in   []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrMalformed, "truncated"},
		{"nesting too deep", append(deep, make([]byte, 2*len(deep))...), ErrMalformed, "nesting deeper than 16"},
		{"length of 5 octets", mustHex("3085010000000000"), ErrMalformed, "length of 5 octets overflows"},
		{"reserved length octet", mustHex("30ff"), ErrMalformed, "reserved length octet"},
		{"length beyond input", mustHex("3084ffffffff00"), ErrMalformed, "truncated: need 4294967295 bytes, have 1"},
		{"long length truncated", mustHex("308201"), ErrMalformed, "truncated"},
		{"child overruns parent", mustHex("30030403000000"), ErrMalformed, "truncated: need 3 bytes, have 1"},
		{"primitive with indefinite length", mustHex("04800000"), ErrMalformed, "primitive element with indefinite length"},
		{"high tag number", mustHex("1f2200"), ErrUnsupported, "high-tag-number"},
		{"end-of-contents with length", mustHex("30800001"), ErrMalformed, "end-of-contents with non-zero length"},
		{"end-of-contents in definite element", mustHex("30020000"), ErrMalformed, "unexpected end-of-contents"},
		{"missing end-of-contents", mustHex("30800500"), ErrMalformed, "truncated"},
		{"bare end-of-contents", mustHex("0000"), ErrMalformed, "unexpected end-of-contents"},
		{"not a sequence", mustHex("0500"), ErrMalformed, "ContentInfo: tag 0x05"},
		{"over the size limit", make([]byte, MaxEnvelopeSize+1), ErrUnsupported, "exceeds the limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { assertRefused(t, tt.in, tt.want, tt.msg) })
	}
}

func TestParseRefusesEveryTruncation(t *testing.T) {
	envelopes := [][]byte{}
	for _, v := range loadParseVectors(t) {
		envelopes = append(envelopes, v.envelope)
	}
	kms, _ := loadKMSVector(t)
	envelopes = append(envelopes, kms.Envelope)
	for _, env := range envelopes {
		for n := range len(env) {
			_, err := Parse(env[:n])
			var perr *ParseError
			if !errors.Is(err, ErrMalformed) || !errors.As(err, &perr) || !strings.HasPrefix(perr.Reason, "truncated") {
				t.Fatalf("Parse(first %d of %d bytes) = %v, want a truncation error", n, len(env), err)
			}
		}
	}
}

func assertRefused(t *testing.T, in []byte, want error, msg string) {
	t.Helper()
	env, err := Parse(in)
	if env != nil {
		t.Errorf("Parse returned an Envelope with error %v", err)
	}
	if !errors.Is(err, want) {
		t.Fatalf("Parse error = %v, want %v", err, want)
	}
	var perr *ParseError
	if !errors.As(err, &perr) {
		t.Fatalf("Parse error %T is not a *ParseError", err)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("Parse error %q does not mention %q", err, msg)
	}
	if !strings.HasPrefix(err.Error(), "cms: ") {
		t.Errorf("Parse error %q lacks the cms: prefix", err)
	}
}
