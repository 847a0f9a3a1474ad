package enclaveproto

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

// FuzzRead checks that Read never panics, fails only with the documented
// errors, and that anything it accepts re-encodes to bytes that decode to
// the same message. The seed corpus is testdata/fuzz/FuzzRead (written by
// go test -update) plus the golden samples.
func FuzzRead(f *testing.F) {
	for _, s := range samples() {
		frame, err := marshal(s.msg, s.id)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frame)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Read takes one frame of at most MaxConfigPayload and leaves the
		// rest unread: longer inputs add nothing but copying.
		if len(data) > HeaderSize+MaxConfigPayload+1 {
			return
		}
		m, id, err := Read(bytes.NewReader(data), MaxConfigPayload)
		if err != nil {
			if m != nil {
				t.Fatalf("Read returned %v with error %v", m, err)
			}
			checkReadError(t, err)
			return
		}
		frame, err := marshal(m, id)
		if err != nil {
			t.Fatalf("decoded %#v but cannot encode it: %v", m, err)
		}
		m2, id2, err := Read(bytes.NewReader(frame), MaxConfigPayload)
		if err != nil {
			t.Fatalf("re-encoded frame does not decode: %v", err)
		}
		if id2 != id || !reflect.DeepEqual(m2, m) {
			t.Fatalf("round trip changed the message:\n got %#v\nwant %#v", m2, m)
		}
	})
}

func checkReadError(t *testing.T, err error) {
	t.Helper()
	for _, want := range []error{ErrMalformed, ErrTooLarge, ErrVersion, ErrUnexpectedType, io.EOF, io.ErrUnexpectedEOF} {
		if errors.Is(err, want) {
			return
		}
	}
	t.Fatalf("Read failed with an undocumented error: %v", err)
}

// FuzzEvent fuzzes the payloads of the log channel's events, which the
// host decodes into the values its metrics count: FuzzRead spends most of
// its inputs on frame headers, this target only on event bodies. Anything
// accepted must satisfy the event's invariants (a known reason, a
// position that can be labelled) and survive a round trip unchanged.
func FuzzEvent(f *testing.F) {
	for _, s := range samples() {
		if _, ok := s.msg.(Event); ok {
			payload, err := encMode.Marshal(s.msg)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(uint8(s.msg.Type()), payload)
		}
	}
	f.Fuzz(func(t *testing.T, typ uint8, payload []byte) {
		if len(payload) > MaxLogPayload {
			return
		}
		t0 := TypeSigned + Type(typ%2)
		m, err := unmarshal(t0, payload)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s payload failed with an undocumented error: %v", t0, err)
			}
			return
		}
		switch ev := m.(type) {
		case *Signed:
			if ev.Height <= 0 || ev.Step < 1 || ev.Step > 3 || ev.Latency < 0 {
				t.Fatalf("accepted an impossible signature: %#v", ev)
			}
		case *Refused:
			if !ev.Reason.Known() {
				t.Fatalf("accepted unknown reason %q", ev.Reason)
			}
		default:
			t.Fatalf("%s payload decoded to %T", t0, m)
		}
		again, err := encMode.Marshal(m)
		if err != nil {
			t.Fatalf("decoded %#v but cannot encode it: %v", m, err)
		}
		m2, err := unmarshal(t0, again)
		if err != nil || !reflect.DeepEqual(m2, m) {
			t.Fatalf("round trip changed the event:\n got %#v (%v)\nwant %#v", m2, err, m)
		}
	})
}
