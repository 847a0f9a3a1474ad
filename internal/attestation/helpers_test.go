package attestation_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/tmkms-nitro/tmkms-nitro/internal/localca"
)

// vector is an attestation document stored in testdata: a real one, or
// the software NSM's (written by TestSoftwareVector -update), which also
// carries its root.
type vector struct {
	Source      string `json:"_source"`
	DocB64      string `json:"attestation_doc_b64"`
	RootPEM     string `json:"root_pem,omitempty"`
	TimestampMS int64  `json:"timestamp_ms"`
	ModuleID    string `json:"module_id"`
}

const (
	realVectorPath     = "testdata/real-attestation-doc-2024-07-16.json"
	softwareVectorPath = "testdata/software-nsm-document.json"
)

// loadVector reads the vector at path; hint says how to make it when it
// is missing.
func loadVector(tb testing.TB, path, hint string) (doc []byte, at time.Time, v vector) {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("missing vector%s: %v", hint, err)
	}
	if err := json.Unmarshal(data, &v); err != nil {
		tb.Fatal(err)
	}
	doc, err = base64.StdEncoding.DecodeString(v.DocB64)
	if err != nil {
		tb.Fatal(err)
	}
	return doc, time.UnixMilli(v.TimestampMS), v
}

func loadRealVector(tb testing.TB) (doc []byte, at time.Time, v vector) {
	tb.Helper()
	return loadVector(tb, realVectorPath, "")
}

func loadSoftwareVector(tb testing.TB) (doc []byte, root *x509.Certificate, at time.Time, v vector) {
	tb.Helper()
	doc, at, v = loadVector(tb, softwareVectorPath, " (regenerate with go test -run TestSoftwareVector -update)")
	block, _ := pem.Decode([]byte(v.RootPEM))
	if block == nil {
		tb.Fatal("software vector: no root PEM")
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return doc, root, at, v
}

type ecdsaKey = ecdsa.PrivateKey

// testChain is a root → intermediate → leaf chain, independent of the code
// under test, for building documents by hand.
type testChain struct {
	now     time.Time
	root    *x509.Certificate
	inter   *x509.Certificate
	issuer  *localca.Cert // inter with its key
	leaf    *x509.Certificate
	leafKey crypto.Signer
}

var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func p384Key(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func newChain(tb testing.TB) *testChain {
	tb.Helper()
	c := &testChain{now: testNow}
	root, err := localca.New(elliptic.P384(), localca.Spec{Subject: pkix.Name{CommonName: "test root"}, Kind: localca.CA, Lifetime: 24 * time.Hour}, c.now)
	if err != nil {
		tb.Fatal(err)
	}
	c.issuer, err = root.Issue(localca.Spec{Subject: pkix.Name{CommonName: "test intermediate"}, Kind: localca.LeafCA, Lifetime: 12 * time.Hour}, c.now)
	if err != nil {
		tb.Fatal(err)
	}
	c.root, c.inter = root.Certificate, c.issuer.Certificate
	return c.withLeaf(tb, p384Key(tb), nil)
}

// withLeaf returns a copy of c with a new leaf for leafKey, issued by the
// same intermediate; edit may change the leaf template.
func (c *testChain) withLeaf(tb testing.TB, leafKey crypto.Signer, edit func(*x509.Certificate)) *testChain {
	tb.Helper()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "test leaf"},
		NotBefore:             c.now.Add(-time.Hour),
		NotAfter:              c.now.Add(3 * time.Hour),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
	}
	if edit != nil {
		edit(tmpl)
	}
	out := *c
	out.leafKey = leafKey
	var err error
	if out.leaf, err = c.issuer.Sign(tmpl, leafKey.Public()); err != nil {
		tb.Fatal(err)
	}
	return &out
}

func ecKey(tb testing.TB, curve elliptic.Curve) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func ed25519Key(tb testing.TB) ed25519.PrivateKey {
	tb.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// leafDoc is a document from c's chain with a different leaf.
func (c *testChain) leafDoc(tb testing.TB, leafKey crypto.Signer, edit func(*x509.Certificate)) []byte {
	tb.Helper()
	lc := c.withLeaf(tb, leafKey, edit)
	return lc.doc(tb, lc.entries())
}

// dupPCRPayload is base with PCR0 listed twice.
func dupPCRPayload(tb testing.TB, base []entry) []byte {
	tb.Helper()
	pcr := mustCBOR(tb, make([]byte, 48))
	raw := append([]byte{0xa2, 0x00}, pcr...)
	raw = append(append(raw, 0x00), pcr...)
	return encodeMap(tb, replace(base, "pcrs", cbor.RawMessage(raw)))
}

// entry is one payload key with its value; raw CBOR goes in as
// cbor.RawMessage.
type entry struct {
	key any // a string, except when testing other key types
	val any
}

func (c *testChain) entries() []entry {
	pcrs := map[uint64][]byte{}
	for i := range uint64(16) {
		pcrs[i] = make([]byte, 48)
	}
	pcrs[0][0] = 0xaa
	return []entry{
		{"module_id", "i-0123456789abcdef0-enc0123456789abcdef"},
		{"digest", "SHA384"},
		{"timestamp", uint64(c.now.UnixMilli())},
		{"pcrs", pcrs},
		{"certificate", c.leaf.Raw},
		{"cabundle", [][]byte{c.root.Raw, c.inter.Raw}},
		{"public_key", nil},
		{"user_data", []byte("user data")},
		{"nonce", []byte("nonce")},
	}
}

// encodeMap writes a definite-length map in entry order, duplicates and all.
func encodeMap(tb testing.TB, entries []entry) []byte {
	tb.Helper()
	if len(entries) >= 24 {
		tb.Fatal("encodeMap: too many entries")
	}
	out := []byte{0xa0 | byte(len(entries))}
	for _, e := range entries {
		out = append(out, mustCBOR(tb, e.key)...)
		out = append(out, mustCBOR(tb, e.val)...)
	}
	return out
}

func mustCBOR(tb testing.TB, v any) []byte {
	tb.Helper()
	em, err := cbor.EncOptions{Sort: cbor.SortCanonical}.EncMode()
	if err != nil {
		tb.Fatal(err)
	}
	b, err := em.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

var protectedES384 = []byte{0xa1, 0x01, 0x38, 0x22}

// sign builds an untagged COSE_Sign1 over body. With a P-384 leaf it is a
// real ES384 signature; otherwise 96 zero bytes.
func (c *testChain) sign(tb testing.TB, protected, body []byte) []byte {
	tb.Helper()
	sig := make([]byte, 96)
	if k, ok := c.leafKey.(*ecdsa.PrivateKey); ok && k.Curve == elliptic.P384() {
		sig = es384(tb, k, protected, body)
	}
	return coseSign1(tb, protected, []byte{0xa0}, body, sig)
}

func coseSign1(tb testing.TB, protected, unprotected, body, sig []byte) []byte {
	return mustCBOR(tb, []any{protected, cbor.RawMessage(unprotected), body, sig})
}

func es384(tb testing.TB, k *ecdsa.PrivateKey, protected, body []byte) []byte {
	tb.Helper()
	digest := sha512.Sum384(mustCBOR(tb, []any{"Signature1", protected, []byte{}, body}))
	r, s, err := ecdsa.Sign(rand.Reader, k, digest[:])
	if err != nil {
		tb.Fatal(err)
	}
	sig := make([]byte, 96)
	r.FillBytes(sig[:48])
	s.FillBytes(sig[48:])
	return sig
}

// doc signs the payload made of entries.
func (c *testChain) doc(tb testing.TB, entries []entry) []byte {
	return c.sign(tb, protectedES384, encodeMap(tb, entries))
}

func replace(entries []entry, key, val any) []entry {
	out := append([]entry(nil), entries...)
	for i := range out {
		if out[i].key == key {
			out[i].val = val
		}
	}
	return out
}

func remove(entries []entry, key any) []entry {
	var out []entry
	for _, e := range entries {
		if e.key != key {
			out = append(out, e)
		}
	}
	return out
}
