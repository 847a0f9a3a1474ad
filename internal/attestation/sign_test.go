package attestation_test

import (
	"bytes"
	"crypto/elliptic"
	"crypto/x509"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/tmkms-nitro/tmkms-nitro/internal/attestation"
)

type rawCOSE struct {
	_           struct{} `cbor:",toarray"`
	Protected   []byte
	Unprotected cbor.RawMessage
	Payload     []byte
	Signature   []byte
}

func splitCOSE(tb testing.TB, doc []byte) rawCOSE {
	tb.Helper()
	var m rawCOSE
	if err := cbor.Unmarshal(doc, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// documentFor is the Document equivalent of c.entries().
func (c *testChain) documentFor() *attestation.Document {
	pcrs := map[int][]byte{}
	for i := range 16 {
		pcrs[i] = make([]byte, 48)
	}
	pcrs[0][0] = 0xaa
	return &attestation.Document{
		ModuleID:    "i-0123456789abcdef0-enc0123456789abcdef",
		Timestamp:   c.now,
		PCRs:        pcrs,
		Certificate: c.leaf,
		UserData:    []byte("user data"),
		Nonce:       []byte("nonce"),
	}
}

func TestSignWireShape(t *testing.T) {
	c := newChain(t)
	doc, err := attestation.Sign(c.documentFor(), [][]byte{c.root.Raw, c.inter.Raw}, c.leafKey.(*ecdsaKey))
	if err != nil {
		t.Fatal(err)
	}
	// Untagged COSE_Sign1, protected {1: -35}, unprotected {}, payload bstr.
	if want := []byte{0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0, 0x59}; !bytes.HasPrefix(doc, want) {
		t.Errorf("document starts % x, want % x", doc[:8], want)
	}
	m := splitCOSE(t, doc)
	// Byte-identical to the hand-written encoding: keys in the NSM's order,
	// PCRs ascending, null for the absent public_key.
	if want := encodeMap(t, c.entries()); !bytes.Equal(m.Payload, want) {
		t.Errorf("payload\n% x\nwant\n% x", m.Payload, want)
	}
	if len(m.Signature) != 96 {
		t.Errorf("signature is %d bytes", len(m.Signature))
	}
	got, err := attestation.Verify(doc, attestation.Options{Roots: []*x509.Certificate{c.root}, CurrentTime: c.now})
	if err != nil {
		t.Fatal(err)
	}
	want := c.documentFor()
	want.Digest = "SHA384"
	if got.ModuleID != want.ModuleID || !got.Timestamp.Equal(want.Timestamp) || got.Digest != want.Digest ||
		!maps.EqualFunc(got.PCRs, want.PCRs, bytes.Equal) || !got.Certificate.Equal(want.Certificate) ||
		!bytes.Equal(got.UserData, want.UserData) || !bytes.Equal(got.Nonce, want.Nonce) || got.PublicKey != nil {
		t.Errorf("round trip: got %+v, want %+v", got, want)
	}
}

// TestSignKeyOrderMatchesRealDocument pins the payload key order to the one
// of the real NSM document.
func TestSignKeyOrderMatchesRealDocument(t *testing.T) {
	raw, _, _ := loadRealVector(t)
	c := newChain(t)
	signed, err := attestation.Sign(c.documentFor(), [][]byte{c.root.Raw, c.inter.Raw}, c.leafKey.(*ecdsaKey))
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle", "public_key", "user_data", "nonce"}
	for name, doc := range map[string][]byte{"real": raw, "signed": signed} {
		body := splitCOSE(t, doc).Payload
		last := -1
		for _, k := range keys {
			i := bytes.Index(body, mustCBOR(t, k))
			if i <= last {
				t.Errorf("%s: key %q at %d, previous key at %d", name, k, i, last)
			}
			last = i
		}
	}
}

func TestSignRefuses(t *testing.T) {
	c := newChain(t)
	key := c.leafKey.(*ecdsaKey)
	bundle := [][]byte{c.root.Raw, c.inter.Raw}
	p256 := c.withLeaf(t, ecKey(t, elliptic.P256()), nil)
	edit := func(f func(*attestation.Document)) *attestation.Document {
		d := c.documentFor()
		f(d)
		return d
	}
	big := make([][]byte, 16)
	for i := range big {
		big[i] = make([]byte, 1000)
	}
	tests := []struct {
		name   string
		doc    *attestation.Document
		bundle [][]byte
		key    *ecdsaKey
		field  string
		want   string
	}{
		{name: "nil document", key: key, bundle: bundle, want: "needs a document"},
		{name: "nil certificate", doc: edit(func(d *attestation.Document) { d.Certificate = nil }), key: key, bundle: bundle, want: "needs a document"},
		{name: "nil key", doc: c.documentFor(), bundle: bundle, want: "needs a document"},
		{name: "key of another certificate", doc: c.documentFor(), key: p384Key(t), bundle: bundle, want: "does not match"},
		{name: "P-256 certificate", doc: edit(func(d *attestation.Document) { d.Certificate = p256.leaf }), key: p256.leafKey.(*ecdsaKey), bundle: bundle, want: "P-384"},
		{name: "empty module id", doc: edit(func(d *attestation.Document) { d.ModuleID = "" }), key: key, bundle: bundle, field: "module_id"},
		{name: "other digest", doc: edit(func(d *attestation.Document) { d.Digest = "SHA256" }), key: key, bundle: bundle, field: "digest"},
		{name: "zero timestamp", doc: edit(func(d *attestation.Document) { d.Timestamp = time.Time{} }), key: key, bundle: bundle, field: "timestamp"},
		{name: "no PCRs", doc: edit(func(d *attestation.Document) { d.PCRs = nil }), key: key, bundle: bundle, field: "pcrs"},
		{name: "short PCR", doc: edit(func(d *attestation.Document) { d.PCRs[2] = []byte{1} }), key: key, bundle: bundle, field: "pcrs"},
		{name: "PCR index 32", doc: edit(func(d *attestation.Document) { d.PCRs[32] = make([]byte, 48) }), key: key, bundle: bundle, field: "pcrs"},
		{name: "negative PCR index", doc: edit(func(d *attestation.Document) { d.PCRs[-1] = make([]byte, 48) }), key: key, bundle: bundle, field: "pcrs"},
		{name: "no cabundle", doc: c.documentFor(), key: key, field: "cabundle"},
		{name: "user data too large", doc: edit(func(d *attestation.Document) { d.UserData = make([]byte, 1025) }), key: key, bundle: bundle, field: "user_data"},
		{name: "document too large", doc: c.documentFor(), key: key, bundle: big, want: "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := attestation.Sign(tt.doc, tt.bundle, tt.key)
			if err == nil || doc != nil {
				t.Fatalf("Sign = %d bytes, %v; want an error", len(doc), err)
			}
			if tt.field != "" {
				checkField(t, err, tt.field)
			}
			if !strings.HasPrefix(err.Error(), "attestation: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestSignEmptyDigestMeansSHA384(t *testing.T) {
	c := newChain(t)
	d := c.documentFor()
	d.Digest = ""
	doc, err := attestation.Sign(d, [][]byte{c.root.Raw, c.inter.Raw}, c.leafKey.(*ecdsaKey))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := attestation.Verify(doc, attestation.Options{Roots: []*x509.Certificate{c.root}, CurrentTime: c.now}); err != nil || got.Digest != "SHA384" {
		t.Fatalf("Verify = %+v, %v", got, err)
	}
}
