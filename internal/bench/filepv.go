package bench

import (
	"fmt"
	"os"
	"path/filepath"

	cmtlog "github.com/cometbft/cometbft/libs/log"
	cmtprivval "github.com/cometbft/cometbft/privval"

	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// startFilePV runs configuration (a): CometBFT's FilePV, with its key and
// state files in dir, behind CometBFT's own SignerServer dialing the node's
// unix socket, as `cometbft` users run a remote FilePV.
func startFilePV(dir string) (*subject, error) {
	sock := filepath.Join(dir, "node.sock")
	n, err := listenNode(sock, chainID)
	if err != nil {
		return nil, err
	}
	statePath := filepath.Join(dir, "priv_validator_state.json")
	pv, err := cmtprivval.LoadOrGenFilePV(filepath.Join(dir, "priv_validator_key.json"), statePath, nil)
	if err != nil {
		n.close()
		return nil, fmt.Errorf("FilePV: %w", err)
	}
	ep := cmtprivval.NewSignerDialerEndpoint(cmtlog.NewNopLogger(), cmtprivval.DialUnixFn(sock))
	srv := cmtprivval.NewSignerServer(ep, chainID, pv)
	if err := srv.Start(); err != nil {
		n.close()
		return nil, fmt.Errorf("SignerServer: %w", err)
	}
	// The node first: the server's Stop waits for its pending read, which
	// only the node closing the connection ends.
	stop := func() { n.close(); srv.Stop() }
	if err := n.connect(connectTimeout); err != nil {
		stop()
		return nil, err
	}
	return &subject{cfg: FilePV, node: n, next: 1, stop: stop, readState: filePVState(statePath)}, nil
}

// filePVState reads FilePV's JSON state file.
func filePVState(path string) func() (signstate.State, error) {
	return func() (signstate.State, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return signstate.State{}, err
		}
		st, _, err := signstate.ParseJSON(data)
		return st, err
	}
}
