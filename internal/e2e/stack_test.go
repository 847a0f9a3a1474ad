package e2e

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	cmtlog "github.com/cometbft/cometbft/libs/log"
	cmtprivval "github.com/cometbft/cometbft/privval"
)

// localStack is local mode (local init, then local start) facing
// CometBFT's own node-side privval client, for tests that drive signing
// request by request.
type localStack struct {
	bin, home, laddr string
	pub              []byte
	client           *cmtprivval.SignerClient
	helper           *localSigner
}

// startLocalStack inits a home for chain, lets prepare adjust it, starts
// the stack and waits until the signer is connected.
func startLocalStack(t *testing.T, chain string, prepare func(home string)) *localStack {
	t.Helper()
	s := &localStack{bin: Programs(t), home: filepath.Join(t.TempDir(), "kms")}
	s.pub = localInit(t, s.bin, s.home, chain)
	if prepare != nil {
		prepare(s.home)
	}
	var sock string
	s.client, sock = nodeSide(t, chain)
	s.laddr = "unix://" + sock
	s.helper = startLocal(t, s.bin, s.home, s.laddr)
	if err := s.client.WaitForConnection(30 * time.Second); err != nil {
		t.Fatalf("the signer did not connect: %v\n%s", err, s.helper.logs)
	}
	return s
}

// nodeSide is the node's end of privval, CometBFT's own SignerClient
// listening on a fresh unix socket, closed when the test ends; it returns
// the client and the socket's path.
func nodeSide(t *testing.T, chain string) (*cmtprivval.SignerClient, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "pv.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cmtprivval.NewSignerClient(cmtprivval.NewSignerListenerEndpoint(cmtlog.NewNopLogger(), cmtprivval.NewUnixListener(ln)), chain)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, sock
}
