package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	cmtproto "github.com/cometbft/cometbft/api/cometbft/types/v1"
	"github.com/cometbft/cometbft/crypto"
	cmtjson "github.com/cometbft/cometbft/libs/json"
	"github.com/cometbft/cometbft/types"
)

// NodeConfig describes a single-validator chain whose only validator key is
// held by a remote signer.
type NodeConfig struct {
	Version string        // e.g. "v0.38.26"
	Laddr   string        // priv_validator_laddr: unix:///... or tcp://127.0.0.1:port
	PubKey  crypto.PubKey // the validator key in genesis
	// VoteExtensionsHeight enables vote extensions from this height (v0.38+);
	// 0 leaves them off.
	VoteExtensionsHeight int64
}

// Node is a running CometBFT node.
type Node struct {
	Home    string
	ChainID string
	RPC     string
	cfg     NodeConfig
	cmd     *exec.Cmd
	done    chan struct{}
	log     *os.File
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// InitNode creates a node home for cfg. Start it with Start.
func InitNode(t testing.TB, bin string, cfg NodeConfig) *Node {
	t.Helper()
	home := filepath.Join(t.TempDir(), "node")
	if out, err := exec.Command(bin, "init", "--home", home).CombinedOutput(); err != nil {
		t.Fatalf("cometbft init: %v\n%s", err, out)
	}
	rpcPort := FreePort(t)
	n := &Node{Home: home, RPC: fmt.Sprintf("http://127.0.0.1:%d", rpcPort)}
	editConfig(t, filepath.Join(home, "config", "config.toml"), map[string]string{
		"priv_validator_laddr":            strconv.Quote(cfg.Laddr),
		"laddr = \"tcp://0.0.0.0:26656":   fmt.Sprintf("laddr = \"tcp://127.0.0.1:%d\"", FreePort(t)),
		"laddr = \"tcp://127.0.0.1:26657": fmt.Sprintf("laddr = \"tcp://127.0.0.1:%d\"", rpcPort),
		"pex":                             "false",
		"timeout_commit":                  `"300ms"`,
		"timeout_propose":                 `"2s"`,
		"proxy_app":                       `"kvstore"`,
		"prometheus":                      "false",
		"double_sign_check_height":        "0",
	})
	n.cfg = cfg
	if cfg.PubKey != nil {
		n.ChainID = editGenesis(t, filepath.Join(home, "config", "genesis.json"), cfg)
	} else {
		n.ChainID = readChainID(t, filepath.Join(home, "config", "genesis.json"))
	}
	return n
}

// SetValidator puts pk into the genesis, for keys made after InitNode
// (local init needs the chain id first).
func (n *Node) SetValidator(t testing.TB, pk crypto.PubKey) {
	n.cfg.PubKey = pk
	editGenesis(t, filepath.Join(n.Home, "config", "genesis.json"), n.cfg)
}

func readChainID(t testing.TB, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		ChainID string `json:"chain_id"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g.ChainID
}

// editConfig rewrites "key = value" lines; a key containing " = " matches a
// whole line prefix instead.
func editConfig(t testing.TB, path string, set map[string]string) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		var re *regexp.Regexp
		if strings.Contains(k, " = ") {
			re = regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(k) + `"$`)
		} else {
			re = regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(k) + ` = .*$`)
			v = k + " = " + v
		}
		b = re.ReplaceAllLiteral(b, []byte(v))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func editGenesis(t testing.TB, path string, cfg NodeConfig) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var g map[string]any
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	vals := g["validators"].([]any)
	v := vals[0].(map[string]any)
	v["address"] = cfg.PubKey.Address().String()
	keyJSON, err := cmtjson.Marshal(cfg.PubKey) // CometBFT's own type name for the key
	if err != nil {
		t.Fatal(err)
	}
	v["pub_key"] = json.RawMessage(keyJSON)
	if typ := cfg.PubKey.Type(); typ != "ed25519" {
		// ed25519 is the only type a default genesis allows.
		params := g["consensus_params"].(map[string]any)
		params["validator"] = map[string]any{"pub_key_types": []string{typ}}
	}
	if cfg.VoteExtensionsHeight > 0 {
		params := g["consensus_params"].(map[string]any)
		h := strconv.FormatInt(cfg.VoteExtensionsHeight, 10)
		if strings.HasPrefix(cfg.Version, "v1.") {
			params["feature"] = map[string]any{"vote_extensions_enable_height": h, "pbts_enable_height": "0"}
		} else {
			params["abci"] = map[string]any{"vote_extensions_enable_height": h}
		}
	}
	if b, err = json.MarshalIndent(g, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return g["chain_id"].(string)
}

// Start runs the node until the test ends (or Stop).
func (n *Node) Start(t testing.TB, bin string) {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(n.Home, "node.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	n.log = logf
	n.cmd = exec.Command(bin, "node", "--home", n.Home, "--proxy_app=kvstore")
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.done = make(chan struct{})
	go func() { n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() { n.Stop() })
}

// Stop kills the node.
func (n *Node) Stop() {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Kill()
	<-n.done
	n.log.Close()
}

// Logs returns the node's output so far.
func (n *Node) Logs() string {
	b, _ := os.ReadFile(filepath.Join(n.Home, "node.log"))
	return string(b)
}

func (n *Node) rpc(ctx context.Context, path string, v any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.RPC+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return err
	}
	if len(env.Error) > 0 && string(env.Error) != "null" {
		return fmt.Errorf("rpc %s: %s", path, env.Error)
	}
	return json.Unmarshal(env.Result, v)
}

// Height returns the latest committed height.
func (n *Node) Height(ctx context.Context) (int64, error) {
	var st struct {
		SyncInfo struct {
			Height string `json:"latest_block_height"`
		} `json:"sync_info"`
	}
	if err := n.rpc(ctx, "/status", &st); err != nil {
		return 0, err
	}
	return strconv.ParseInt(st.SyncInfo.Height, 10, 64)
}

// WaitHeight waits until the chain reaches height h.
func (n *Node) WaitHeight(ctx context.Context, h int64) error {
	var last int64
	for {
		select {
		case <-n.done:
			return fmt.Errorf("node exited at height %d", last)
		default:
		}
		if got, err := n.Height(ctx); err == nil {
			last = got
			if got >= h {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("height %d not reached (at %d): %w", h, last, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// VerifyCommits checks that the commit of every height from first to last
// carries a valid signature by pk.
func (n *Node) VerifyCommits(ctx context.Context, first, last int64, pk crypto.PubKey) error {
	for h := first; h <= last; h++ {
		if err := n.verifyCommit(ctx, h, pk); err != nil {
			return err
		}
	}
	return nil
}

func (n *Node) verifyCommit(ctx context.Context, h int64, pk crypto.PubKey) error {
	var res struct {
		SignedHeader struct {
			Commit struct {
				Height  string `json:"height"`
				Round   int32  `json:"round"`
				BlockID struct {
					Hash  string `json:"hash"`
					Parts struct {
						Total uint32 `json:"total"`
						Hash  string `json:"hash"`
					} `json:"parts"`
				} `json:"block_id"`
				Signatures []struct {
					Flag      int       `json:"block_id_flag"`
					Address   string    `json:"validator_address"`
					Timestamp time.Time `json:"timestamp"`
					Signature []byte    `json:"signature"`
				} `json:"signatures"`
			} `json:"commit"`
		} `json:"signed_header"`
	}
	if err := n.rpc(ctx, fmt.Sprintf("/commit?height=%d", h), &res); err != nil {
		return err
	}
	c := res.SignedHeader.Commit
	hash, err1 := hex.DecodeString(c.BlockID.Hash)
	parts, err2 := hex.DecodeString(c.BlockID.Parts.Hash)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	for _, s := range c.Signatures {
		if s.Flag != 2 || !strings.EqualFold(s.Address, pk.Address().String()) {
			continue
		}
		v := &cmtproto.Vote{
			Type: types.PrecommitType, Height: h, Round: c.Round, Timestamp: s.Timestamp,
			BlockID: cmtproto.BlockID{Hash: hash, PartSetHeader: cmtproto.PartSetHeader{Total: c.BlockID.Parts.Total, Hash: parts}},
		}
		if !pk.VerifySignature(types.VoteSignBytes(n.ChainID, v), s.Signature) {
			return fmt.Errorf("commit signature at height %d does not verify against our key", h)
		}
		if !bytes.Equal(pk.Address(), mustHex(s.Address)) {
			return errors.New("address mismatch")
		}
		return nil
	}
	return fmt.Errorf("commit at height %d has no signature from our validator", h)
}

func mustHex(s string) []byte {
	b, _ := hex.DecodeString(s)
	return b
}

// lastHeightFromLogs returns the last "committed state" height in the log.
func (n *Node) lastHeightFromLogs() (int64, error) {
	re := regexp.MustCompile(`committed state\s+height=(\d+)`)
	m := re.FindAllStringSubmatch(n.Logs(), -1)
	if len(m) == 0 {
		return 0, errors.New("no committed height in the log")
	}
	return strconv.ParseInt(m[len(m)-1][1], 10, 64)
}
