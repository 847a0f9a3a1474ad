// Package localnode runs a single-validator CometBFT chain in-process (v1.0,
// kvstore application, in-memory databases) whose only validator key is held
// by a remote signer at a priv_validator_laddr. It exists for the demo: the
// end-to-end tests run real node binaries of every version instead.
package localnode

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cometbft/cometbft/abci/example/kvstore"
	cfg "github.com/cometbft/cometbft/config"
	"github.com/cometbft/cometbft/crypto"
	cmtlog "github.com/cometbft/cometbft/libs/log"
	"github.com/cometbft/cometbft/node"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/proxy"
	"github.com/cometbft/cometbft/types"
)

// Config describes the chain.
type Config struct {
	Home    string        // node home directory, created if needed
	ChainID string        //
	PubKey  crypto.PubKey // the validator's key, held by the signer
	Laddr   string        // priv_validator_laddr (unix:///... or tcp://...)
	// BlockInterval is the pause between blocks (timeout_commit).
	BlockInterval time.Duration
}

// Node is a running in-process node.
type Node struct{ n *node.Node }

// Start writes the genesis and config into cfg.Home and starts the node.
// Like every CometBFT node with priv_validator_laddr, it waits at most 3 s
// for the signer, so the signer must be dialing already.
func Start(ctx context.Context, c Config) (*Node, error) {
	conf := cfg.DefaultConfig()
	conf.SetRoot(c.Home)
	for _, d := range []string{"config", "data"} {
		if err := os.MkdirAll(filepath.Join(c.Home, d), 0o700); err != nil {
			return nil, err
		}
	}
	conf.DBBackend = "memdb"
	conf.PrivValidatorListenAddr = c.Laddr
	conf.RPC.ListenAddress = ""
	conf.P2P.ListenAddress = "tcp://127.0.0.1:0"
	conf.P2P.PexReactor = false
	conf.Consensus.TimeoutCommit = c.BlockInterval
	conf.Instrumentation.Prometheus = false
	gen := &types.GenesisDoc{
		ChainID:         c.ChainID,
		GenesisTime:     time.Now().UTC(),
		ConsensusParams: types.DefaultConsensusParams(),
		Validators:      []types.GenesisValidator{{Address: c.PubKey.Address(), PubKey: c.PubKey, Power: 10, Name: "tmkms-nitro"}},
	}
	gen.ConsensusParams.Feature.VoteExtensionsEnableHeight = 1
	if err := gen.ValidateAndComplete(); err != nil {
		return nil, fmt.Errorf("localnode: invalid genesis: %w", err)
	}
	if err := gen.SaveAs(conf.GenesisFile()); err != nil {
		return nil, err
	}
	nodeKey, err := p2p.LoadOrGenNodeKey(conf.NodeKeyFile())
	if err != nil {
		return nil, err
	}
	n, err := node.NewNode(ctx, conf, nil, nodeKey, proxy.NewLocalClientCreator(kvstore.NewInMemoryApplication()),
		node.DefaultGenesisDocProviderFunc(conf), cfg.DefaultDBProvider, node.DefaultMetricsProvider(conf.Instrumentation), cmtlog.NewNopLogger())
	if err != nil {
		return nil, fmt.Errorf("localnode: %w", err)
	}
	if err := n.Start(); err != nil {
		return nil, fmt.Errorf("localnode: failed to start: %w", err)
	}
	return &Node{n: n}, nil
}

// Height is the latest committed height.
func (n *Node) Height() int64 { return n.n.BlockStore().Height() }

// Stop stops the node.
func (n *Node) Stop() error { return n.n.Stop() }
