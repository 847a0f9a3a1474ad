package cms

import (
	"bytes"
	"crypto/rand"
	"errors"
	"reflect"
	"testing"
)

// seedEnvelopes returns every real envelope we have plus its definite-length
// re-encoding. It fails the fuzz target rather than let it run unseeded.
func seedEnvelopes(f *testing.F) [][]byte {
	f.Helper()
	v, _ := loadKMSVector(f)
	seeds := [][]byte{v.Envelope}
	for _, pv := range loadParseVectors(f) {
		seeds = append(seeds, pv.envelope)
	}
	root, err := parseBER(v.Envelope)
	if err != nil {
		f.Fatal(err)
	}
	seeds = append(seeds, toDefinite(root))
	if len(seeds) < 4 {
		f.Fatal("fuzz seeds missing")
	}
	return seeds
}

// isPackageError reports whether err wraps one of the package's sentinels.
func isPackageError(err error) bool {
	for _, s := range []error{ErrMalformed, ErrUnsupported, ErrWrongRecipient, ErrDecrypt, ErrInvalidKey} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// FuzzParse: no panic; failures are *ParseErrors wrapping a sentinel and
// come without an Envelope; successes survive decode(encode(x)) == x.
func FuzzParse(f *testing.F) {
	for _, s := range seedEnvelopes(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > MaxEnvelopeSize+1 { // bounds one execution; see FuzzOpen
			return
		}
		env, err := Parse(in)
		if err != nil {
			var perr *ParseError
			if env != nil || !errors.As(err, &perr) || !isPackageError(err) {
				t.Fatalf("Parse = %v, %#v; want nil and a *ParseError wrapping a sentinel", env, err)
			}
			return
		}
		out := env.marshal()
		if len(out) > MaxEnvelopeSize { // chunk headers can push a huge primitive envelope over
			return
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(marshal(Parse(in))): %v", err)
		}
		if !reflect.DeepEqual(env, again) {
			t.Fatalf("round trip changed the envelope:\n got %+v\nwant %+v", again, env)
		}
	})
}

// FuzzOpen runs with the vector's key, so mutations that keep the rid reach
// RSA-OAEP and CBC. No panic; failures wrap a sentinel and return no
// plaintext, and decrypt failures carry no detail.
func FuzzOpen(f *testing.F) {
	_, key := loadKMSVector(f)
	for _, s := range seedEnvelopes(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		// Longer inputs only repeat Parse's size check. Bounded, an
		// execution is one parse of at most 64 KiB and at most three RSA
		// operations, far from the engine's 10 s limit for a worker.
		if len(in) > MaxEnvelopeSize+1 {
			return
		}
		plaintext, err := Open(in, key)
		if err != nil {
			if plaintext != nil || !isPackageError(err) {
				t.Fatalf("Open = %x, %v; want nil and a sentinel", plaintext, err)
			}
			if errors.Is(err, ErrDecrypt) && err != ErrDecrypt {
				t.Fatalf("decrypt failure carries detail: %v", err)
			}
			return
		}
		sealed, err := Seal(plaintext, &key.PublicKey, rand.Reader)
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		again, err := Open(sealed, key)
		if err != nil || !bytes.Equal(again, plaintext) {
			t.Fatalf("Open(Seal(Open(in))) = %x, %v; want %x", again, err, plaintext)
		}
	})
}
