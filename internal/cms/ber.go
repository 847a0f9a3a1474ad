package cms

// A small BER reader and writer. encoding/asn1 and cryptobyte both refuse
// indefinite lengths, which KMS uses on every outer layer, so we decode the
// envelope into a tree ourselves. Only the low-tag-number form is accepted
// and lengths are capped at four octets; nothing KMS emits needs more.
// Non-minimal lengths are accepted, as BER allows them.

// Identifier octets used by the envelope.
const (
	tagInteger     = 0x02
	tagOctetString = 0x04
	tagOID         = 0x06
	tagSequence    = 0x30
	tagSet         = 0x31
	tagImplicit0   = 0x80 // [0] primitive: rid, or encryptedContent in one piece
	tagExplicit0   = 0xa0 // [0] constructed: ContentInfo.content, chunked encryptedContent, originatorInfo
	tagExplicit1   = 0xa1 // [1] constructed: unprotectedAttrs

	constructed = 0x20
)

// maxDepth bounds recursion. The deepest element in a KMS envelope (the
// MGF1 hash OID) sits at depth 10, counting the ContentInfo as 0.
const maxDepth = 16

// maxLengthOctets caps long-form lengths: four octets already exceed
// MaxEnvelopeSize, and more could overflow an int.
const maxLengthOctets = 4

// A node is one decoded BER element. Slices alias the input.
type node struct {
	tag      byte   // identifier octet
	offset   int    // where the element starts, for error messages
	raw      []byte // the whole encoding, header (and any end-of-contents) included
	value    []byte // content octets; nil for constructed elements
	children []node // elements inside a constructed element
}

func (n node) isConstructed() bool { return n.tag&constructed != 0 }

// parseBER decodes exactly one element spanning all of in.
func parseBER(in []byte) (node, error) {
	n, end, err := decodeElement(in, 0, len(in), 0)
	if err != nil {
		return node{}, err
	}
	if end != len(in) {
		return node{}, malformed(end, "", "%d bytes of trailing data", len(in)-end)
	}
	return n, nil
}

// decodeElement decodes the element at in[off:], which must end by limit,
// and returns it with the offset just past it.
func decodeElement(in []byte, off, limit, depth int) (node, int, error) {
	if depth > maxDepth {
		return node{}, 0, malformed(off, "", "nesting deeper than %d", maxDepth)
	}
	tag, length, hdr, err := decodeHeader(in, off, limit)
	if err != nil {
		return node{}, 0, err
	}
	n := node{tag: tag, offset: off}
	start := off + hdr
	var end int
	switch {
	case length < 0 && !n.isConstructed():
		return node{}, 0, malformed(off, "", "primitive element with indefinite length")
	case length < 0:
		n.children, end, err = decodeUntilEOC(in, start, limit, depth+1)
	case n.isConstructed():
		end = start + length
		n.children, err = decodeAll(in, start, end, depth+1)
	default:
		end = start + length
		n.value = in[start:end]
	}
	if err != nil {
		return node{}, 0, err
	}
	n.raw = in[off:end]
	return n, end, nil
}

// decodeHeader reads an identifier and a length. A length of -1 means
// indefinite. On success the content is known to fit before limit.
func decodeHeader(in []byte, off, limit int) (tag byte, length, hdr int, err error) {
	if limit-off < 2 {
		return 0, 0, 0, truncated(off, 2, limit-off)
	}
	tag, first := in[off], in[off+1]
	switch {
	case tag == 0:
		return 0, 0, 0, malformed(off, "", "unexpected end-of-contents")
	case tag&0x1f == 0x1f:
		return 0, 0, 0, unsupported(off, "", "high-tag-number identifier 0x%02x", tag)
	case first < 0x80:
		length, hdr = int(first), 2
	case first == 0x80:
		return tag, -1, 2, nil
	case first == 0xff:
		return 0, 0, 0, malformed(off, "", "reserved length octet 0xff")
	default:
		length, hdr, err = decodeLongLength(in, off, limit, int(first&0x7f))
		if err != nil {
			return 0, 0, 0, err
		}
	}
	if have := limit - off - hdr; length > have {
		return 0, 0, 0, truncated(off, uint64(length), have)
	}
	return tag, length, hdr, nil
}

// decodeLongLength reads n length octets following in[off+1].
func decodeLongLength(in []byte, off, limit, n int) (length, hdr int, err error) {
	if n > maxLengthOctets {
		return 0, 0, malformed(off, "", "length of %d octets overflows", n)
	}
	hdr = 2 + n
	if limit-off < hdr {
		return 0, 0, truncated(off, uint64(hdr), limit-off)
	}
	var l uint64
	for _, b := range in[off+2 : off+hdr] {
		l = l<<8 | uint64(b)
	}
	if l > uint64(limit-off-hdr) { // also keeps the int conversion safe
		return 0, 0, truncated(off, l, limit-off-hdr)
	}
	return int(l), hdr, nil
}

// decodeAll decodes the children of a definite-length element.
func decodeAll(in []byte, off, end, depth int) ([]node, error) {
	var children []node
	for off < end {
		child, next, err := decodeElement(in, off, end, depth)
		if err != nil {
			return nil, err
		}
		children = append(children, child)
		off = next
	}
	return children, nil
}

// decodeUntilEOC decodes the children of an indefinite-length element and
// returns the offset just past its end-of-contents octets.
func decodeUntilEOC(in []byte, off, limit, depth int) ([]node, int, error) {
	var children []node
	for {
		if limit-off < 2 {
			return nil, 0, truncated(off, 2, limit-off)
		}
		if in[off] == 0 {
			if in[off+1] != 0 {
				return nil, 0, malformed(off, "", "end-of-contents with non-zero length")
			}
			return children, off + 2, nil
		}
		child, next, err := decodeElement(in, off, limit, depth)
		if err != nil {
			return nil, 0, err
		}
		children = append(children, child)
		off = next
	}
}

func truncated(off int, need uint64, have int) error {
	return malformed(off, "", "truncated: need %d bytes, have %d", need, max(have, 0))
}

// definite encodes a definite-length element in DER form.
func definite(tag byte, content ...[]byte) []byte {
	size := 0
	for _, c := range content {
		size += len(c)
	}
	out := append([]byte{tag}, encodeLength(size)...)
	for _, c := range content {
		out = append(out, c...)
	}
	return out
}

// indefinite encodes a constructed element with an indefinite length, as
// KMS does for the outer layers of the envelope.
func indefinite(tag byte, children ...[]byte) []byte {
	out := []byte{tag, 0x80}
	for _, c := range children {
		out = append(out, c...)
	}
	return append(out, 0, 0)
}

func encodeLength(n int) []byte {
	if n < 0x80 {
		return []byte{byte(n)}
	}
	var octets []byte
	for ; n > 0; n >>= 8 {
		octets = append([]byte{byte(n)}, octets...)
	}
	return append([]byte{0x80 | byte(len(octets))}, octets...)
}
