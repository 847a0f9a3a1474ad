package ha

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

func testKey(t testing.TB, seed byte, chain string) Key {
	k, err := DeriveKey(bytes.Repeat([]byte{seed}, 32), chain)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var testDecision = signstate.State{Height: 12, Round: 1, Step: signstate.StepPrecommit,
	BlockID:   signstate.BlockID{Hash: bytes.Repeat([]byte{1}, 32), PartsTotal: 1, PartsHash: bytes.Repeat([]byte{2}, 32)},
	SignBytes: []byte("sign bytes"), Signature: bytes.Repeat([]byte{9}, 64)}

func TestRecord(t *testing.T) {
	k := testKey(t, 1, "chain-1")
	rec, err := k.Seal(testDecision, "signer-a")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(rec, testDecision.Signature) {
		t.Fatal("a record carries the signature")
	}
	st, inst, err := k.Open(rec)
	if err != nil || inst != "signer-a" || st.HRS() != testDecision.HRS() || !bytes.Equal(st.SignBytes, testDecision.SignBytes) || st.Signature != nil {
		t.Fatalf("round trip: %+v %q %v", st, inst, err)
	}
	if hrs, inst, ok := Peek(rec); !ok || hrs != testDecision.HRS() || inst != "signer-a" {
		t.Fatalf("Peek: %v %q %v", hrs, inst, ok)
	}
	for name, other := range map[string]Key{"another chain": testKey(t, 1, "chain-2"), "another key": testKey(t, 2, "chain-1")} {
		if _, _, err := other.Open(rec); !errors.Is(err, ErrForged) {
			t.Errorf("%s: err = %v, want ErrForged", name, err)
		}
	}
	for i := range rec {
		bad := bytes.Clone(rec)
		bad[i] ^= 0x40
		if _, _, err := k.Open(bad); !errors.Is(err, ErrForged) {
			t.Fatalf("byte %d flipped: err = %v, want ErrForged", i, err)
		}
	}
	if _, _, err := k.Open(append(rec, 0)); !errors.Is(err, ErrForged) {
		t.Fatalf("trailing byte: %v", err)
	}
	if s := k.String(); s != "ha.Key(redacted)" {
		t.Fatalf("key printed as %q", s)
	}
}

func FuzzOpen(f *testing.F) {
	k := testKey(f, 1, "chain-1")
	rec, _ := k.Seal(testDecision, "signer-a")
	f.Add(rec)
	f.Add([]byte{0x84, 0x01, 0x40, 0x60, 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > MaxRecordSize+1 { // Open refuses these first
			return
		}
		st, _, err := k.Open(b)
		if err != nil {
			if !errors.Is(err, ErrForged) {
				t.Fatalf("error not ErrForged: %v", err)
			}
			return
		}
		again, err := k.Seal(st, "x")
		if err != nil {
			t.Fatalf("an accepted record does not seal again: %v", err)
		}
		if _, _, err := k.Open(again); err != nil {
			t.Fatal(err)
		}
	})
}
