package enclave

import (
	"bytes"
	"context"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	cmtproto "github.com/cometbft/cometbft/api/cometbft/types/v1"
	cmtlog "github.com/cometbft/cometbft/libs/log"
	cmtprivval "github.com/cometbft/cometbft/privval"
	"github.com/cometbft/cometbft/types"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/kmspolicy"
	"github.com/tmkms-nitro/tmkms-nitro/internal/localkms"
	"github.com/tmkms-nitro/tmkms-nitro/internal/softnsm"
)

// world is a real enclave (Run) with what surrounds it on a host: the
// local KMS, a software NSM whose PCRs the key policy pins, and per chain
// the helper's state server and a CometBFT node's privval endpoint, all
// on unix sockets named by host port.
type world struct {
	t      *testing.T
	dir    string
	kms    *localkms.Server
	keyARN string
	config string // the enclave's config socket
	logs   lockedBuffer
	stop   func()

	mu     sync.Mutex
	routes map[uint32]string // host port → socket
	hold   map[uint32]*held  // host ports whose dials wait
	open   atomic.Int64      // connections the enclave dialed and has not closed
}

func newWorld(t *testing.T) *world {
	t.Helper()
	dir, err := os.MkdirTemp("", "enc") // unix socket paths are short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	w := &world{t: t, dir: dir, config: filepath.Join(dir, "config"), routes: map[uint32]string{}, hold: map[uint32]*held{}}

	ca, err := softnsm.NewCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pcr0, pcr4 := softnsm.PCR0([]byte("enclave under test")), sha512.Sum384([]byte("instance"))
	m, err := softnsm.NewSoftware(&softnsm.SoftwareConfig{CA: ca, PCRs: map[int][]byte{0: pcr0, 4: pcr4[:]}})
	if err != nil {
		t.Fatal(err)
	}
	if w.kms, err = localkms.New(localkms.Config{Dir: filepath.Join(dir, "kms"), TrustedRoots: []*x509.Certificate{ca.Root()}}); err != nil {
		t.Fatal(err)
	}
	kln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); w.kms.Serve(kln) }()
	t.Cleanup(func() { w.kms.Close(); <-served })
	kmsDial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", kln.Addr().String())
	}
	roots := x509.NewCertPool()
	roots.AddCert(w.kms.Root())
	w.keyARN = w.createKey(kmsDial, roots, hex.EncodeToString(pcr0), hex.EncodeToString(pcr4[:]))

	ln, err := net.Listen("unix", w.config)
	if err != nil {
		t.Fatal(err)
	}
	p := Platform{Listen: ln, DialHost: w.dialHost, NSM: m, KMSDial: kmsDial, KMSRoots: roots, KMSEndpoint: "https://localhost",
		Log: slog.New(slog.NewTextHandler(&w.logs, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, p) }()
	w.stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	t.Cleanup(w.stop)
	return w
}

// createKey makes the KMS key, with the policy the operator seeds: only
// an enclave with these PCRs gets the role's data keys and decryptions.
func (w *world) createKey(dial func(context.Context, string, string) (net.Conn, error), roots *x509.CertPool, pcr0, pcr4 string) string {
	policy, err := kmspolicy.Seed(kmspolicy.Params{AccountID: "111122223333", RoleARN: w.kms.Credentials().RoleARN,
		PCR0: []string{pcr0}, PCR4: []string{pcr4}})
	if err != nil {
		w.t.Fatal(err)
	}
	doc, err := kmspolicy.Marshal(policy)
	if err != nil {
		w.t.Fatal(err)
	}
	admin := awskms.New(awskms.Options{Region: w.kms.Region(), BaseEndpoint: aws.String("https://localhost"),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return w.kms.AdminCredentials().AWS(), nil
		}),
		HTTPClient: &http.Client{Transport: &http.Transport{DialContext: dial, TLSClientConfig: &tls.Config{RootCAs: roots}}}, RetryMaxAttempts: 1})
	out, err := admin.CreateKey(w.t.Context(), &awskms.CreateKeyInput{Policy: aws.String(string(doc))})
	if err != nil {
		w.t.Fatalf("CreateKey: %v", err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

func (w *world) dialHost(ctx context.Context, port uint32) (net.Conn, error) {
	w.mu.Lock()
	path, hold := w.routes[port], w.hold[port]
	w.mu.Unlock()
	if hold != nil {
		hold.reached.Do(func() { close(hold.dialed) })
		select {
		case <-hold.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if path == "" {
		return nil, fmt.Errorf("nothing on host port %d", port)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	w.open.Add(1)
	return &countedConn{Conn: c, open: &w.open}, nil
}

// countedConn counts itself out of the enclave's open connections when closed.
type countedConn struct {
	net.Conn
	open *atomic.Int64
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.Conn.Close()
}

func (w *world) route(port uint32, path string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.routes[port] = path
}

// held are the dials of a host port that wait for release.
type held struct {
	reached sync.Once
	dialed  chan struct{} // closed once the enclave dials
	release chan struct{}
}

// holdDials makes the enclave's dials of port wait until the returned
// function is called; dialed is closed once one waits.
func (w *world) holdDials(port uint32) (dialed <-chan struct{}, release func()) {
	h := &held{dialed: make(chan struct{}), release: make(chan struct{})}
	w.mu.Lock()
	w.hold[port] = h
	w.mu.Unlock()
	release = sync.OnceFunc(func() { close(h.release) })
	w.t.Cleanup(release)
	return h.dialed, release
}

// call sends m on a new config connection and returns the answer.
func (w *world) call(m enclaveproto.Message) (enclaveproto.Message, error) {
	nc, err := net.Dial("unix", w.config)
	if err != nil {
		return nil, err
	}
	c := enclaveproto.NewConn(nc, enclaveproto.MaxPayload(enclaveproto.TypeGeneratedKey))
	defer c.Close()
	ctx, cancel := context.WithTimeout(w.t.Context(), 30*time.Second)
	defer cancel()
	return c.Call(ctx, m)
}

func (w *world) creds() enclaveproto.Credentials {
	c := w.kms.Credentials()
	return enclaveproto.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken}
}

// sealKey has the enclave generate a consensus key sealed for chains.
func (w *world) sealKey(chains ...string) []byte {
	w.t.Helper()
	resp, err := w.call(&enclaveproto.GenerateKey{Region: w.kms.Region(), KMSKeyID: w.keyARN, Credentials: w.creds(),
		Purpose: enclaveproto.PurposeConsensus, Binding: enclaveproto.Binding{ChainIDs: chains}})
	if err != nil {
		w.t.Fatalf("GenerateKey: %v", err)
	}
	return resp.(*enclaveproto.GeneratedKey).SealedKey
}

// configure sends c and returns the enclave's answer.
func (w *world) configure(c *enclaveproto.Configure) (*enclaveproto.Configured, error) {
	resp, err := w.call(c)
	if err != nil {
		return nil, err
	}
	return resp.(*enclaveproto.Configured), nil
}

// configured counts the log records of chain id starting to sign.
func (w *world) configured(id string) int {
	return strings.Count(w.logs.String(), `msg="configured: signing" chain_id=`+id+" ")
}

// chain is one chain's host side: the helper's state server and a node.
type chain struct {
	id     string
	cfg    *enclaveproto.Configure
	state  *stateHost
	client *cmtprivval.SignerClient
}

// newChain serves chain id's state on statePort and its node on
// validatorPort, and returns its Configure.
func (w *world) newChain(id string, key []byte, statePort, validatorPort uint32) *chain {
	w.t.Helper()
	dir := filepath.Join(w.dir, id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		w.t.Fatal(err)
	}
	c := &chain{id: id, state: startStateHost(w.t, dir)}
	w.route(statePort, c.state.sock)
	pv := filepath.Join(dir, "pv.sock")
	ln, err := net.Listen("unix", pv)
	if err != nil {
		w.t.Fatal(err)
	}
	endpoint := cmtprivval.NewSignerListenerEndpoint(cmtlog.NewNopLogger(), cmtprivval.NewUnixListener(ln))
	if c.client, err = cmtprivval.NewSignerClient(endpoint, id); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { endpoint.Stop() })
	w.route(validatorPort, pv)
	c.cfg = &enclaveproto.Configure{ChainID: id, Addresses: []string{"unix:///node.sock"}, Region: w.kms.Region(), KMSKeyID: w.keyARN,
		SealedConsensusKey: key, Credentials: w.creds(), StatePort: statePort, ValidatorPort: validatorPort}
	return c
}

// sign has the chain's node ask for a prevote at height h and checks that
// the signature verifies and that the chain's own state records it.
func (c *chain) sign(t *testing.T, h int64) {
	t.Helper()
	v := &cmtproto.Vote{Type: types.PrevoteType, Height: h, Timestamp: time.Now(), ValidatorAddress: bytes.Repeat([]byte{1}, 20),
		BlockID: cmtproto.BlockID{Hash: bytes.Repeat([]byte{2}, 32), PartSetHeader: cmtproto.PartSetHeader{Total: 1, Hash: bytes.Repeat([]byte{3}, 32)}}}
	if err := c.client.WaitForConnection(10 * time.Second); err != nil {
		t.Fatalf("chain %s: the enclave did not connect: %v", c.id, err)
	}
	if err := c.client.SignVote(c.id, v, false); err != nil {
		t.Fatalf("chain %s: prevote at %d: %v", c.id, h, err)
	}
	pk, err := c.client.GetPubKey()
	if err != nil {
		t.Fatal(err)
	}
	if !pk.VerifySignature(types.VoteSignBytes(c.id, v), v.Signature) {
		t.Fatalf("chain %s: the prevote's signature does not verify", c.id)
	}
	if got := c.state.file.State().Height; got != h {
		t.Fatalf("chain %s: its state is at height %d after signing at %d", c.id, got, h)
	}
}

// lockedBuffer is the enclave's local log, read while it is written.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// wantRefused fails unless err is the enclave's refusal with code, naming
// each of names.
func wantRefused(t *testing.T, err error, code string, names ...string) {
	t.Helper()
	var perr *enclaveproto.Error
	if !errors.As(err, &perr) || perr.Code != code {
		t.Fatalf("answer %v, want a %s refusal", err, code)
	}
	for _, n := range names {
		if !strings.Contains(perr.Message, n) {
			t.Errorf("refusal %q does not name %q", perr.Message, n)
		}
	}
}

// TestChainsSideBySide configures two chains sharing one consensus key on
// one enclave: each signs through its own node with its own state, and
// configurations refused for a third chain, or for one of the two with
// other settings, leave both signing. Run's exit closes every connection
// of every chain.
func TestChainsSideBySide(t *testing.T) {
	w := newWorld(t)
	key := w.sealKey("chain-a", "chain-b")
	a := w.newChain("chain-a", key, 5555, 5000)
	b := w.newChain("chain-b", key, 5556, 5100)
	for _, c := range []*chain{a, b} {
		if _, err := w.configure(c.cfg); err != nil {
			t.Fatalf("configure %s: %v", c.id, err)
		}
	}
	a.sign(t, 5)
	b.sign(t, 3) // below chain-a's height: the chains' double-sign states are apart

	third := func(edit func(*enclaveproto.Configure)) *enclaveproto.Configure {
		c := &enclaveproto.Configure{ChainID: "chain-c", Addresses: []string{"unix:///node.sock"}, Region: w.kms.Region(), KMSKeyID: w.keyARN,
			SealedConsensusKey: w.sealKey("chain-c"), Credentials: w.creds(), StatePort: 5557, ValidatorPort: 5200}
		edit(c)
		return c
	}
	refused := []struct {
		name  string
		cfg   *enclaveproto.Configure
		names []string // the refusal must name them
	}{
		{"a key sealed for other chains", third(func(c *enclaveproto.Configure) { c.SealedConsensusKey = key }), []string{"chain-c"}},
		{"chain-a's state port", third(func(c *enclaveproto.Configure) { c.StatePort = 5555 }), []string{"chain-c", "chain-a", "5555"}},
		{"chain-b's validator port", third(func(c *enclaveproto.Configure) {
			c.Addresses, c.ValidatorPort = []string{"unix:///1.sock", "unix:///2.sock"}, 5099
		}), []string{"chain-c", "chain-b", "5100"}},
		{"a state port on chain-a's default validator port", third(func(c *enclaveproto.Configure) { c.StatePort = enclaveproto.DefaultValidatorPort }),
			[]string{"chain-c", "chain-a", "5000"}},
		{"another log port", third(func(c *enclaveproto.Configure) { c.LogPort = 7050 }), []string{"chain-c", "7050", "6050"}},
		{"chain-a with other settings", func() *enclaveproto.Configure {
			c := *a.cfg
			c.MaxHeight = 1000
			return &c
		}(), []string{"chain-a"}},
	}
	h := int64(5)
	for _, r := range refused {
		t.Run(r.name, func(t *testing.T) {
			_, err := w.configure(r.cfg)
			wantRefused(t, err, enclaveproto.CodeBadConfig, r.names...)
			h++
			a.sign(t, h)
			b.sign(t, h)
		})
	}
	// The refusals released what they had reserved.
	c := w.newChain("chain-c", w.sealKey("chain-c"), 5557, 5200)
	if _, err := w.configure(c.cfg); err != nil {
		t.Fatalf("configure chain-c after the refusals: %v", err)
	}
	c.sign(t, 1)
	if _, err := w.configure(a.cfg); err != nil {
		t.Errorf("chain-a configured again with its settings: %v", err)
	}
	for _, id := range []string{"chain-a", "chain-b", "chain-c"} {
		if n := w.configured(id); n != 1 {
			t.Errorf("%s started signing %d times, want once", id, n)
		}
	}

	w.stop()
	if n := w.open.Load(); n != 0 {
		t.Errorf("%d connections of the chains' sessions still open after Run returned", n)
	}
}

// TestChainConfiguredOnce configures one chain on several connections at
// once: exactly one session starts, and the others are told to retry or
// answered as a refresh. While one chain's configuration waits on the
// host, another chain is configured and signs.
func TestChainConfiguredOnce(t *testing.T) {
	w := newWorld(t)
	key := w.sealKey()
	a := w.newChain("chain-a", key, 5555, 5000)
	b := w.newChain("chain-b", key, 5556, 5100)

	dialed, release := w.holdDials(5555) // chain-a's state
	first := make(chan error, 1)
	go func() {
		_, err := w.configure(a.cfg)
		first <- err
	}()
	select {
	case <-dialed:
	case <-time.After(20 * time.Second):
		t.Fatal("chain-a's configuration never reached its state channel")
	}
	_, err := w.configure(a.cfg)
	wantRefused(t, err, enclaveproto.CodeInternal, "chain-a", "being configured")
	if _, err := w.configure(b.cfg); err != nil {
		t.Fatalf("chain-b while chain-a's configuration waits: %v", err)
	}
	b.sign(t, 1)
	release()
	if err := <-first; err != nil {
		t.Fatalf("chain-a: %v", err)
	}
	a.sign(t, 1)

	c := w.newChain("chain-c", key, 5557, 5200)
	const racers = 6
	answers := make(chan error, racers)
	var wg sync.WaitGroup
	for range racers {
		wg.Go(func() {
			_, err := w.configure(c.cfg)
			answers <- err
		})
	}
	wg.Wait()
	close(answers)
	for err := range answers {
		var perr *enclaveproto.Error
		if err != nil && !(errors.As(err, &perr) && strings.Contains(perr.Message, "being configured")) {
			t.Errorf("a racing Configure of chain-c: %v", err)
		}
	}
	c.sign(t, 1)
	for _, id := range []string{"chain-a", "chain-b", "chain-c"} {
		if n := w.configured(id); n != 1 {
			t.Errorf("%s started signing %d times, want once", id, n)
		}
	}
}

// TestReserve checks what a new chain is refused for against the chains
// already running or being configured, whose ports count with their
// defaults.
func TestReserve(t *testing.T) {
	cfg := func(id string, state, validator uint32, nodes int, logPort uint32) *enclaveproto.Configure {
		return &enclaveproto.Configure{ChainID: id, Addresses: make([]string, nodes), StatePort: state, ValidatorPort: validator, LogPort: logPort}
	}
	// big is a chain whose nodes may each send the largest request.
	big := func(id string, state, validator uint32, nodes int) *enclaveproto.Configure {
		c := cfg(id, state, validator, nodes, 0)
		c.MaxMessageSize = 4 << 20
		return c
	}
	full := make([]*enclaveproto.Configure, enclaveproto.MaxChains)
	for i := range full {
		full[i] = cfg(fmt.Sprint("chain-", i), 6000+uint32(i), 5000+10*uint32(i), 1, 0)
	}
	tests := []struct {
		name    string
		running []*enclaveproto.Configure
		c       *enclaveproto.Configure
		refusal string // "": reserved
	}{
		{"the first chain", nil, cfg("new", 0, 0, 8, 7050), ""},
		{"the last chain", full[1:], cfg("new", 1, 2, 1, 0), ""},
		{"a chain over the limit", full, cfg("new", 1, 2, 1, 0), "16 chains"},
		{"a default state port", []*enclaveproto.Configure{cfg("a", 0, 1, 1, 0)}, cfg("new", 5555, 2, 1, 0), `chain "a" uses`},
		{"validator ports overlapping", []*enclaveproto.Configure{cfg("a", 1, 5000, 3, 0)}, cfg("new", 2, 4998, 3, 0), "port 5000"},
		{"validator ports adjacent", []*enclaveproto.Configure{cfg("a", 1, 5000, 3, 0)}, cfg("new", 2, 5003, 3, 0), ""},
		{"a state port on a validator port", []*enclaveproto.Configure{cfg("a", 1, 0, 2, 0)}, cfg("new", 5001, 2, 1, 0), "port 5001"},
		{"a log port other than the default in use", []*enclaveproto.Configure{cfg("a", 1, 2, 1, 0)}, cfg("new", 3, 4, 1, 7050), "to 6050"},
		{"a log port other than the one in use", []*enclaveproto.Configure{cfg("a", 1, 2, 1, 7050), cfg("b", 3, 4, 1, 0)}, cfg("new", 5, 6, 1, 6050), "to 7050"},
		{"the log port in use", []*enclaveproto.Configure{cfg("a", 1, 2, 1, 7050)}, cfg("new", 3, 4, 1, 7050), ""},
		{"no log port", []*enclaveproto.Configure{cfg("a", 1, 2, 1, 7050)}, cfg("new", 3, 4, 1, 0), ""},
		{"a state port on the log port", nil, cfg("new", 6050, 4, 1, 0), "port 6050, the log channel's"},
		{"a validator port on the log port in use", []*enclaveproto.Configure{cfg("a", 1, 2, 1, 7050)}, cfg("new", 3, 7048, 3, 0), "port 7050, the log channel's"},
		{"nodes' requests within the memory budget", []*enclaveproto.Configure{big("a", 1, 100, 8)}, big("new", 2, 200, 8), ""},
		{"nodes' requests over the memory budget", []*enclaveproto.Configure{big("a", 1, 100, 8), big("b", 2, 200, 8)}, big("new", 3, 300, 1), "more than the 64 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &Enclave{log: slog.New(slog.DiscardHandler), sessions: map[string]*session{}}
			for _, c := range tt.running {
				if _, err := e.reserve(c); err != nil {
					t.Fatalf("reserving running chain %s: %v", c.ChainID, err)
				}
			}
			_, err := e.reserve(tt.c)
			switch {
			case tt.refusal == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.refusal == "":
				if e.sessions["new"] == nil {
					t.Fatal("reserved, but not entered")
				}
			case !errors.Is(err, errBadConfig) || !strings.Contains(err.Error(), tt.refusal):
				t.Fatalf("reserve = %v, want a bad configuration saying %q", err, tt.refusal)
			case len(e.sessions) != len(tt.running):
				t.Fatalf("%d sessions after a refusal, want the %d running", len(e.sessions), len(tt.running))
			}
		})
	}
}
