package cms

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestSealOpenRoundTrip(t *testing.T) {
	_, key := loadKMSVector(t)
	for _, size := range []int{0, 1, 15, 16, 17, 32, 999, 1000, 1001, 4096, MaxPlaintextSize} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			plaintext := make([]byte, size)
			if _, err := rand.Read(plaintext); err != nil {
				t.Fatal(err)
			}
			sealed, err := Seal(plaintext, &key.PublicKey, rand.Reader)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			got, err := Open(sealed, key)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, plaintext) {
				t.Fatalf("Open(Seal(%d bytes)) differs", size)
			}
		})
	}
}

// TestMarshalReproducesKMS: re-encoding the fields of a real envelope gives
// back the real envelope byte for byte, so Seal's layout is KMS's layout.
func TestMarshalReproducesKMS(t *testing.T) {
	v, _ := loadKMSVector(t)
	envelopes := map[string][]byte{"edgebit": v.Envelope}
	for _, pv := range loadParseVectors(t) {
		if strings.Contains(pv.name, "chunked") { // the primitive variant differs by design
			envelopes[pv.name] = pv.envelope
		}
	}
	for name, want := range envelopes {
		env, err := Parse(want)
		if err != nil {
			t.Fatalf("%s: Parse: %v", name, err)
		}
		if got := env.marshal(); !bytes.Equal(got, want) {
			t.Errorf("%s: marshal differs from KMS:\n got %x\nwant %x", name, got, want)
		}
	}
}

// TestSealShapeMatchesKMS compares the element tree of a fresh Seal with the
// real vector: tags, length forms, OIDs, versions and field sizes.
func TestSealShapeMatchesKMS(t *testing.T) {
	v, key := loadKMSVector(t)
	sealed, err := Seal(make([]byte, len(v.Plaintext)), &key.PublicKey, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	got, want := shape(t, sealed), shape(t, v.Envelope)
	if got != want {
		t.Fatalf("sealed shape differs from KMS:\n--- got\n%s--- want\n%s", got, want)
	}
	if len(sealed) != len(v.Envelope) {
		t.Errorf("sealed %d bytes, KMS %d", len(sealed), len(v.Envelope))
	}
}

func TestSealChunksLongContent(t *testing.T) {
	_, key := loadKMSVector(t)
	sealed, err := Seal(make([]byte, 2500), &key.PublicKey, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	root, err := parseBER(sealed)
	if err != nil {
		t.Fatal(err)
	}
	content := root.children[1].children[0].children[2].children[2] // ContentInfo.content.EnvelopedData.encryptedContentInfo.encryptedContent
	var sizes []int
	for _, c := range content.children {
		sizes = append(sizes, len(c.value))
	}
	if fmt.Sprint(sizes) != "[1000 1000 512]" {
		t.Fatalf("encryptedContent chunks = %v, want [1000 1000 512]", sizes)
	}
}

func TestSealRefuses(t *testing.T) {
	_, key := loadKMSVector(t)
	tests := []struct {
		name      string
		plaintext []byte
		pub       *rsa.PublicKey
		rand      io.Reader
		want      error
	}{
		{"nil key", nil, nil, rand.Reader, ErrInvalidKey},
		{"key without modulus", nil, &rsa.PublicKey{E: 65537}, rand.Reader, ErrInvalidKey},
		{"plaintext too large", make([]byte, MaxPlaintextSize+1), &key.PublicKey, rand.Reader, ErrUnsupported},
		{"short randomness", nil, &key.PublicKey, bytes.NewReader(make([]byte, 47)), io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Seal(tt.plaintext, tt.pub, tt.rand)
			if got != nil || !errors.Is(err, tt.want) {
				t.Fatalf("Seal = %d bytes, %v; want nil, %v", len(got), err, tt.want)
			}
		})
	}
}

// shape renders an envelope's element tree, one element per line. OIDs and
// INTEGERs are shown by value; other primitives, whose contents are random
// or key-specific, only by length.
func shape(t *testing.T, envelope []byte) string {
	t.Helper()
	root, err := parseBER(envelope)
	if err != nil {
		t.Fatalf("parseBER: %v", err)
	}
	var b strings.Builder
	var walk func(n node, depth int)
	walk = func(n node, depth int) {
		indent := strings.Repeat("  ", depth)
		switch {
		case n.isConstructed() && n.raw[1] == 0x80:
			fmt.Fprintf(&b, "%s%02x indefinite\n", indent, n.tag)
		case n.isConstructed():
			fmt.Fprintf(&b, "%s%02x definite\n", indent, n.tag)
		case n.tag == tagOID:
			fmt.Fprintf(&b, "%s%02x %s\n", indent, n.tag, oidString(n.value))
		case n.tag == tagInteger || n.tag == 0x05:
			fmt.Fprintf(&b, "%s%02x %x\n", indent, n.tag, n.value)
		default:
			fmt.Fprintf(&b, "%s%02x %d bytes\n", indent, n.tag, len(n.value))
		}
		for _, c := range n.children {
			walk(c, depth+1)
		}
	}
	walk(root, 0)
	return b.String()
}
