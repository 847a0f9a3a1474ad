package cms

import (
	"bytes"
	"crypto/aes"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/hex"
)

// MaxEnvelopeSize bounds the input to Parse and Open. KMS returns at most a
// 4 KiB plaintext, which makes an envelope of under 5 KiB.
const MaxEnvelopeSize = 64 << 10

// OID contents (without tag and length) of everything the envelope names,
// and the SHA-256 AlgorithmIdentifier built from them.
var (
	oidEnvelopedData = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03} // 1.2.840.113549.1.7.3
	oidData          = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01} // 1.2.840.113549.1.7.1
	oidRSAESOAEP     = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07} // 1.2.840.113549.1.1.7
	oidAES256CBC     = []byte{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a} // 2.16.840.1.101.3.4.1.42
	oidMGF1          = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08} // 1.2.840.113549.1.1.8
	oidSHA256        = []byte{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01} // 2.16.840.1.101.3.4.2.1
	asn1NULL         = []byte{0x05, 0x00}
	sha256AlgID      = definite(tagSequence, definite(tagOID, oidSHA256), asn1NULL) // with explicit NULL parameters
)

// keyEncryptionAlgorithm is the exact DER AlgorithmIdentifier KMS sends:
// RSAES-OAEP with hashFunc [0] sha256, maskGenFunc [1] MGF1(sha256) and
// pSourceFunc absent, which means an empty label. Anything else is refused
// byte for byte, so no parameter can slip past a lenient decoder.
var keyEncryptionAlgorithm = definite(tagSequence,
	definite(tagOID, oidRSAESOAEP),
	definite(tagSequence,
		definite(tagExplicit0, sha256AlgID),
		definite(tagExplicit1, definite(tagSequence, definite(tagOID, oidMGF1), sha256AlgID)),
	),
)

const (
	versionSKI = 2  // EnvelopedData and KeyTransRecipientInfo version when rid is a subjectKeyIdentifier
	cekSize    = 32 // AES-256
)

// An Envelope holds the fields of a parsed envelope. It owns its slices.
type Envelope struct {
	// RecipientKeyID is the rid: SHA-256 of the recipient's DER
	// SubjectPublicKeyInfo (see RecipientKeyID).
	RecipientKeyID [sha256.Size]byte
	EncryptedKey   []byte // the content key wrapped with RSA-OAEP-SHA256
	IV             []byte // the AES-256-CBC IV, always 16 bytes
	Ciphertext     []byte // AES-256-CBC ciphertext, a positive multiple of 16 bytes
}

// Parse decodes envelope without decrypting it. It refuses anything that is
// not exactly the shape KMS emits, with a *ParseError wrapping ErrMalformed
// or ErrUnsupported.
func Parse(envelope []byte) (*Envelope, error) {
	if len(envelope) > MaxEnvelopeSize {
		return nil, unsupported(0, "", "%d bytes exceeds the limit of %d", len(envelope), MaxEnvelopeSize)
	}
	root, err := parseBER(envelope)
	if err != nil {
		return nil, err
	}
	ed, err := readContentInfo(root)
	if err != nil {
		return nil, err
	}
	ri, eci, err := readEnvelopedData(ed)
	if err != nil {
		return nil, err
	}
	var env Envelope
	if err := env.readRecipient(ri); err != nil {
		return nil, err
	}
	if err := env.readContent(eci); err != nil {
		return nil, err
	}
	return &env, nil
}

// readContentInfo returns the EnvelopedData inside the ContentInfo.
func readContentInfo(n node) (node, error) {
	const field = "ContentInfo"
	if err := expectFields(n, field, tagSequence, 2); err != nil {
		return node{}, err
	}
	if err := expectOID(n.children[0], field+".contentType", oidEnvelopedData); err != nil {
		return node{}, err
	}
	if err := expectFields(n.children[1], field+".content", tagExplicit0, 1); err != nil {
		return node{}, err
	}
	return n.children[1].children[0], nil
}

// readEnvelopedData returns the single RecipientInfo and the
// EncryptedContentInfo.
func readEnvelopedData(n node) (recipient, content node, err error) {
	const field = "EnvelopedData"
	if err := expectTag(n, field, tagSequence); err != nil {
		return node{}, node{}, err
	}
	// Name the optional fields KMS never sends before the count check
	// would call them merely "too many".
	for _, c := range n.children[min(1, len(n.children)):] {
		if c.tag == tagExplicit0 || c.tag == tagExplicit1 {
			return node{}, node{}, unsupported(c.offset, field, "originatorInfo and unprotectedAttrs are not supported")
		}
	}
	if err := expectFields(n, field, tagSequence, 3); err != nil {
		return node{}, node{}, err
	}
	if err := expectVersion(n.children[0], field+".version", versionSKI); err != nil {
		return node{}, node{}, err
	}
	set := n.children[1]
	if err := expectTag(set, field+".recipientInfos", tagSet); err != nil {
		return node{}, node{}, err
	}
	if len(set.children) != 1 {
		return node{}, node{}, unsupported(set.offset, field+".recipientInfos", "has %d recipients, want exactly 1", len(set.children))
	}
	return set.children[0], n.children[2], nil
}

// readRecipient reads a KeyTransRecipientInfo identified by subjectKeyIdentifier.
func (e *Envelope) readRecipient(n node) error {
	const field = "KeyTransRecipientInfo"
	if n.tag != tagSequence {
		return unsupported(n.offset, "RecipientInfo", "tag 0x%02x is not KeyTransRecipientInfo", n.tag)
	}
	if err := expectFields(n, field, tagSequence, 4); err != nil {
		return err
	}
	version, rid, alg, key := n.children[0], n.children[1], n.children[2], n.children[3]
	if err := expectVersion(version, field+".version", versionSKI); err != nil {
		return err
	}
	if rid.tag != tagImplicit0 {
		return unsupported(rid.offset, field+".rid", "tag 0x%02x is not a subjectKeyIdentifier", rid.tag)
	}
	if len(rid.value) != sha256.Size {
		return unsupported(rid.offset, field+".rid", "is %d bytes, want %d (SHA-256)", len(rid.value), sha256.Size)
	}
	if err := expectKeyEncryptionAlgorithm(alg, field+".keyEncryptionAlgorithm"); err != nil {
		return err
	}
	if err := expectTag(key, field+".encryptedKey", tagOctetString); err != nil {
		return err
	}
	if len(key.value) == 0 {
		return malformed(key.offset, field+".encryptedKey", "is empty")
	}
	e.RecipientKeyID = [sha256.Size]byte(rid.value)
	e.EncryptedKey = bytes.Clone(key.value)
	return nil
}

// readContent reads an EncryptedContentInfo holding AES-256-CBC data.
func (e *Envelope) readContent(n node) error {
	const field = "EncryptedContentInfo"
	if err := expectFields(n, field, tagSequence, 3); err != nil {
		return err
	}
	if err := expectOID(n.children[0], field+".contentType", oidData); err != nil {
		return err
	}
	iv, err := readContentEncryptionAlgorithm(n.children[1], field+".contentEncryptionAlgorithm")
	if err != nil {
		return err
	}
	ciphertext, err := readEncryptedContent(n.children[2], field+".encryptedContent")
	if err != nil {
		return err
	}
	e.IV = bytes.Clone(iv)
	e.Ciphertext = ciphertext
	return nil
}

// readContentEncryptionAlgorithm checks for aes256-CBC and returns its IV.
func readContentEncryptionAlgorithm(n node, field string) ([]byte, error) {
	if err := expectFields(n, field, tagSequence, 2); err != nil {
		return nil, err
	}
	if err := expectOID(n.children[0], field, oidAES256CBC); err != nil {
		return nil, err
	}
	iv := n.children[1]
	if err := expectTag(iv, field+".iv", tagOctetString); err != nil {
		return nil, err
	}
	if len(iv.value) != aes.BlockSize {
		return nil, malformed(iv.offset, field+".iv", "is %d bytes, want %d", len(iv.value), aes.BlockSize)
	}
	return iv.value, nil
}

// readEncryptedContent accepts the [0] IMPLICIT OCTET STRING in either
// form KMS uses: primitive, or constructed from primitive chunks.
func readEncryptedContent(n node, field string) ([]byte, error) {
	var out []byte
	switch n.tag {
	case tagImplicit0:
		out = bytes.Clone(n.value)
	case tagExplicit0:
		for _, chunk := range n.children {
			if chunk.tag != tagOctetString {
				return nil, unsupported(chunk.offset, field, "chunk has tag 0x%02x, want primitive OCTET STRING", chunk.tag)
			}
			out = append(out, chunk.value...)
		}
	default:
		return nil, malformed(n.offset, field, "tag 0x%02x, want [0] OCTET STRING", n.tag)
	}
	if len(out) == 0 || len(out)%aes.BlockSize != 0 {
		return nil, malformed(n.offset, field, "ciphertext is %d bytes, want a positive multiple of %d", len(out), aes.BlockSize)
	}
	return out, nil
}

func expectKeyEncryptionAlgorithm(n node, field string) error {
	if err := expectTag(n, field, tagSequence); err != nil {
		return err
	}
	if len(n.children) == 0 {
		return malformed(n.offset, field, "has no algorithm")
	}
	if err := expectOID(n.children[0], field, oidRSAESOAEP); err != nil {
		return err
	}
	if !bytes.Equal(n.raw, keyEncryptionAlgorithm) {
		return unsupported(n.offset, field, "RSAES-OAEP parameters are not SHA-256, MGF1-SHA-256 and an empty label")
	}
	return nil
}

func expectTag(n node, field string, tag byte) error {
	if n.tag != tag {
		return malformed(n.offset, field, "tag 0x%02x, want 0x%02x", n.tag, tag)
	}
	return nil
}

// expectFields checks a constructed element's tag and child count.
func expectFields(n node, field string, tag byte, count int) error {
	if err := expectTag(n, field, tag); err != nil {
		return err
	}
	if len(n.children) != count {
		return malformed(n.offset, field, "has %d fields, want %d", len(n.children), count)
	}
	return nil
}

func expectOID(n node, field string, want []byte) error {
	if err := expectTag(n, field, tagOID); err != nil {
		return err
	}
	if !bytes.Equal(n.value, want) {
		return unsupported(n.offset, field, "OID %s, want %s", oidString(n.value), oidString(want))
	}
	return nil
}

func expectVersion(n node, field string, want byte) error {
	if err := expectTag(n, field, tagInteger); err != nil {
		return err
	}
	if len(n.value) != 1 || n.value[0] != want {
		return unsupported(n.offset, field, "INTEGER 0x%x, want %d", n.value, want)
	}
	return nil
}

// oidString renders OID contents for error messages, falling back to hex
// for contents that are not a valid OID.
func oidString(contents []byte) string {
	var oid asn1.ObjectIdentifier
	rest, err := asn1.Unmarshal(definite(tagOID, contents), &oid)
	if err != nil || len(rest) != 0 {
		return "0x" + hex.EncodeToString(contents)
	}
	return oid.String()
}
