package cms

import (
	"bytes"
	"testing"
)

// layout is an envelope in KMS's arrangement with every field held as a raw
// encoding, so a test can swap exactly one of them for something wrong.
type layout struct {
	contentType []byte   // ContentInfo.contentType
	version     []byte   // EnvelopedData.version
	originator  []byte   // optional EnvelopedData.originatorInfo; nil means absent
	recipients  [][]byte // RecipientInfo elements; nil means the one built from ktri
	ktri        struct{ version, rid, alg, key []byte }
	eci         struct{ contentType, alg, content []byte }
	unprotected []byte // optional EnvelopedData.unprotectedAttrs; nil means absent
	trailing    []byte // bytes after the ContentInfo
}

// kmsLayout returns the layout of the real KMS vector.
func kmsLayout(t *testing.T) layout {
	t.Helper()
	v, _ := loadKMSVector(t)
	env, err := Parse(v.Envelope)
	if err != nil {
		t.Fatalf("Parse(kms vector): %v", err)
	}
	var l layout
	l.contentType = definite(tagOID, oidEnvelopedData)
	l.version = definite(tagInteger, []byte{2})
	l.ktri.version = definite(tagInteger, []byte{2})
	l.ktri.rid = definite(tagImplicit0, env.RecipientKeyID[:])
	l.ktri.alg = keyEncryptionAlgorithm
	l.ktri.key = definite(tagOctetString, env.EncryptedKey)
	l.eci.contentType = definite(tagOID, oidData)
	l.eci.alg = definite(tagSequence, definite(tagOID, oidAES256CBC), definite(tagOctetString, env.IV))
	l.eci.content = indefinite(tagExplicit0, definite(tagOctetString, env.Ciphertext))
	if got := l.encode(); !bytes.Equal(got, v.Envelope) {
		t.Fatalf("kmsLayout does not reproduce the vector:\n got %x\nwant %x", got, v.Envelope)
	}
	return l
}

func (l layout) encode() []byte {
	recipients := l.recipients
	if recipients == nil {
		recipients = [][]byte{definite(tagSequence, l.ktri.version, l.ktri.rid, l.ktri.alg, l.ktri.key)}
	}
	fields := [][]byte{l.version}
	if l.originator != nil {
		fields = append(fields, l.originator)
	}
	fields = append(fields,
		definite(tagSet, recipients...),
		indefinite(tagSequence, l.eci.contentType, l.eci.alg, l.eci.content))
	if l.unprotected != nil {
		fields = append(fields, l.unprotected)
	}
	out := indefinite(tagSequence, l.contentType, indefinite(tagExplicit0, indefinite(tagSequence, fields...)))
	return append(out, l.trailing...)
}

// toDefinite re-encodes a decoded tree with definite lengths only, giving
// the DER-like form another CMS library might produce.
func toDefinite(n node) []byte {
	if !n.isConstructed() {
		return definite(n.tag, n.value)
	}
	var children [][]byte
	for _, c := range n.children {
		children = append(children, toDefinite(c))
	}
	return definite(n.tag, children...)
}
