package enclaveproto

import (
	"context"
	"errors"
	"net"
	"reflect"
	"testing"
	"testing/synctest"
	"time"
)

// serve answers one request on c with answer(req).
func serve(t *testing.T, c *Conn, answer func(Message, uint64) (Message, uint64)) {
	t.Helper()
	req, id, err := c.Receive(t.Context())
	if err != nil {
		t.Errorf("server Receive: %v", err)
		return
	}
	resp, rid := answer(req, id)
	if err := c.Send(t.Context(), resp, rid); err != nil {
		t.Errorf("server Send: %v", err)
	}
}

func pipe(t *testing.T) (*Conn, *Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return NewConn(a, MaxConfigPayload), NewConn(b, MaxConfigPayload)
}

func TestCall(t *testing.T) {
	host, enclave := pipe(t)
	want := &Configured{ConsensusPubKey: seq(32, 1)}
	go serve(t, enclave, func(m Message, id uint64) (Message, uint64) {
		if _, ok := m.(*Configure); !ok {
			t.Errorf("server got %T", m)
		}
		return want, id
	})
	got, err := host.Call(t.Context(), samples()[0].msg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Call = %#v, want %#v", got, want)
	}
}

func TestCallErrorAnswer(t *testing.T) {
	host, enclave := pipe(t)
	go serve(t, enclave, func(_ Message, id uint64) (Message, uint64) {
		return &Error{Code: CodeKMSAccessDenied, Message: "denied"}, id
	})
	_, err := host.Call(t.Context(), &GenerateKey{Purpose: PurposeConsensus})
	var perr *Error
	if !errors.As(err, &perr) || perr.Code != CodeKMSAccessDenied {
		t.Fatalf("Call = %v, want a *Error with code %s", err, CodeKMSAccessDenied)
	}
}

func TestCallWrongID(t *testing.T) {
	host, enclave := pipe(t)
	go serve(t, enclave, func(_ Message, id uint64) (Message, uint64) {
		return &Ack{}, id + 1
	})
	if _, err := host.Call(t.Context(), &GenerateKey{Purpose: PurposeConsensus, Credentials: testCredentials()}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Call = %v, want ErrMalformed", err)
	}
}

// TestDeadline checks that a silent peer costs the context's deadline and
// no more, and that the Conn is usable for the next message afterwards.
func TestDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		host, enclave := pipe(t)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		start := time.Now()
		_, _, err := host.Receive(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Receive = %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d != 5*time.Second {
			t.Errorf("Receive gave up after %v, want 5s", d)
		}
		go enclave.Send(t.Context(), &Ack{}, 3)
		if m, id, err := host.Receive(t.Context()); err != nil || id != 3 || m.Type() != TypeAck {
			t.Fatalf("Receive after a timeout = %v, %d, %v", m, id, err)
		}
	})
}

func TestCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		host, _ := pipe(t)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(time.Second, cancel)
		if err := host.Send(ctx, &Ack{}, 1); !errors.Is(err, context.Canceled) {
			t.Fatalf("Send = %v, want context.Canceled", err)
		}
		if err := host.Send(ctx, &Ack{}, 1); !errors.Is(err, context.Canceled) {
			t.Fatalf("Send on a cancelled context = %v, want context.Canceled", err)
		}
	})
}

func TestExpect(t *testing.T) {
	ack := &Ack{}
	if got, err := Expect[*Ack](ack); err != nil || got != ack {
		t.Errorf("Expect[*Ack](ack) = %v, %v", got, err)
	}
	if _, err := Expect[*StateAck](ack); !errors.Is(err, ErrUnexpectedType) || err.Error() != "enclaveproto: got Ack, want StateAck: unexpected message type" {
		t.Errorf("Expect[*StateAck](ack) = %v", err)
	}
	perr := &Error{Code: CodeStateRegression, Message: "m"}
	if _, err := Expect[*StateAck](perr); err != perr {
		t.Errorf("Expect of an Error = %v, want the *Error", err)
	}
	if _, err := Expect[*StateAck](nil); !errors.Is(err, ErrUnexpectedType) {
		t.Errorf("Expect(nil) = %v", err)
	}
	if _, err := Expect[Message](nil); !errors.Is(err, ErrUnexpectedType) {
		t.Errorf("Expect[Message](nil) = %v", err)
	}
}
