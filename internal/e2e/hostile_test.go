package e2e

import (
	"encoding/binary"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cmtproto "github.com/cometbft/cometbft/api/cometbft/types/v1"
	"github.com/cometbft/cometbft/types"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
)

// TestHostileInput sends garbage, a 4 GiB length prefix, a truncated frame
// and a slow-loris frame at every socket the helper and the enclave listen
// on, while the real validator keeps asking for signatures: each hostile
// connection is dropped, and signing never stops. (Hostile input on the
// validator connection itself is tested in internal/privval.)
func TestHostileInput(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	chain := "hostile-chain"
	st := startLocalStack(t, chain, nil)
	home, client, ls := st.home, st.client, st.helper

	// The validator signs a height every 20 ms throughout.
	var signed, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for h := int64(1); ; h++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			v := &cmtproto.Vote{Type: types.PrevoteType, Height: h, BlockID: faultBlock(h, 0), Timestamp: time.Now().UTC()}
			if client.SignVote(chain, v, true) == nil {
				signed.Add(1)
			} else {
				failed.Add(1)
			}
		}
	}()

	sockets := map[string]string{
		"host state":     filepath.Join(home, "sockets/host/port-5555.sock"),
		"host log":       filepath.Join(home, "sockets/host/port-6050.sock"),
		"host KMS":       filepath.Join(home, "sockets/host/port-8000.sock"),
		"enclave config": filepath.Join(home, "sockets/enclave/port-5050.sock"),
	}
	header := func(length uint32) []byte {
		h := make([]byte, enclaveproto.HeaderSize)
		h[0], h[1], h[2] = enclaveproto.Magic, enclaveproto.Version, byte(enclaveproto.TypePersistState)
		binary.BigEndian.PutUint32(h[12:], length)
		return h
	}
	attacks := map[string]func(net.Conn){
		"garbage":      func(c net.Conn) { c.Write([]byte("\xde\xad\xbe\xef GET / HTTP/1.0\r\n\r\n garbage garbage garbage")) },
		"4 GiB length": func(c net.Conn) { c.Write(header(0xFFFFFFFF)) },
		"truncated":    func(c net.Conn) { c.Write(append(header(100), 1, 2, 3)) },
		"slow loris": func(c net.Conn) {
			for _, b := range header(100) {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(300 * time.Millisecond)
			}
		},
	}
	for target, path := range sockets {
		for name, attack := range attacks {
			before := signed.Load()
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Errorf("%s: %v", target, err)
				continue
			}
			attack(c)
			if !droppedWithin(c, 15*time.Second) {
				t.Errorf("%s / %s: the connection was not dropped", target, name)
			}
			c.Close()
			waitFor(t, 10*time.Second, func() bool { return signed.Load() > before+2 },
				"%s / %s: signing did not continue", target, name)
		}
	}
	close(stop)
	wg.Wait()
	logs := ls.logs.String()
	for _, want := range []string{
		`dropped the enclave connection after a bad message" channel=state`,
		`dropped the enclave connection after a bad message" channel=log`,
		`dropped a config connection after a bad message" source=enclave`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("no log line %q", want)
		}
	}
	t.Logf("hostile input: %d signatures during the attacks, %d requests unanswered (connections replaced under attack)", signed.Load(), failed.Load())
}

// droppedWithin reports whether the peer closes c within d.
func droppedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue // e.g. a TLS alert or an error frame before the close
		}
		ne, ok := err.(net.Error)
		return !ok || !ne.Timeout()
	}
}

func waitFor(t *testing.T, d time.Duration, ok func() bool, format string, args ...any) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Errorf(format, args...)
}
