package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	cmtprivval "github.com/cometbft/cometbft/privval"

	"github.com/tmkms-nitro/tmkms-nitro/internal/ha/etcdlocal"
	"github.com/tmkms-nitro/tmkms-nitro/internal/localmode"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// haInstance is one signer instance of a high-availability set: its own
// local home (helper, enclave, local KMS, state file) holding the same
// sealed key as the others, as on separate EC2 hosts.
type haInstance struct {
	name, home string
	bin        string
	mu         sync.Mutex
	helpers    []*localSigner // every helper started, the last one current
}

// haInstances inits one local home for chain and replicates it n-1 times
// (same sealed key, same KMS key, own state and processes), each with an
// [ha] table for the cluster. It returns the instances and the consensus
// public key.
func haInstances(t *testing.T, bin, chain string, c *etcdlocal.Cluster, n int) ([]*haInstance, []byte) {
	t.Helper()
	dir := t.TempDir()
	first := filepath.Join(dir, "signer-0")
	pub := localInit(t, bin, first, chain)
	var out []*haInstance
	for i := range n {
		name := fmt.Sprintf("signer-%d", i)
		home := filepath.Join(dir, name)
		if i > 0 {
			if err := localmode.Replicate(first, home, localmode.ReplicaOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := localmode.SetHA(home, c.HA(name)); err != nil {
			t.Fatal(err)
		}
		out = append(out, &haInstance{name: name, home: home, bin: bin})
	}
	return out, pub
}

func (h *haInstance) start(t *testing.T, laddr string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.helpers = append(h.helpers, startLocal(t, h.bin, h.home, laddr))
}

// kill SIGKILLs the instance's helper and enclave: the host is gone.
func (h *haInstance) kill() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.helpers) > 0 {
		h.helpers[len(h.helpers)-1].stop(syscall.SIGKILL)
	}
	if pid, ok := localmode.FindEnclavePID(h.home); ok {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

func (h *haInstance) logs() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, l := range h.helpers {
		b.WriteString(l.logs.String())
	}
	return b.String()
}

var signedLine = regexp.MustCompile(`msg=signed .*?hrs=(\S+) block=(\S+)`)

// signedCount counts the signatures an instance released.
func (h *haInstance) signedCount() int { return len(signedLine.FindAllString(h.logs(), -1)) }

// checkReleased fails if two instances' logs show different blocks signed
// at one height/round/step.
func checkReleased(t *testing.T, insts []*haInstance) int {
	t.Helper()
	blocks := map[string]string{}
	for _, in := range insts {
		for _, m := range signedLine.FindAllStringSubmatch(in.logs(), -1) {
			if b, ok := blocks[m[1]]; ok && b != m[2] {
				t.Errorf("DOUBLE SIGN at %s: blocks %s and %s (the second by %s)", m[1], b, m[2], in.name)
			}
			blocks[m[1]] = m[2]
		}
	}
	return len(blocks)
}

// signing returns the instance that is releasing signatures now.
func signing(insts []*haInstance, wait time.Duration) *haInstance {
	before := make([]int, len(insts))
	for i, in := range insts {
		before[i] = in.signedCount()
	}
	time.Sleep(wait)
	for i, in := range insts {
		if in.signedCount() > before[i] {
			return in
		}
	}
	return nil
}

// TestHighAvailability: three signer instances (local mode, same sealed
// key) on a 3-member etcd cluster serve one real CometBFT validator. Blocks
// are produced; the instance signing is killed and another takes over;
// one etcd member is killed and signing goes on; quorum is lost and
// signing stops, then resumes when quorum returns; no two instances ever
// sign different blocks at one height/round/step.
func TestHighAvailability(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	const version = "v0.38.26"
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	node := nodeBinary(ctx, t, version)
	bin := Programs(t)
	cluster := etcdlocal.StartT(t, 3)
	sock := filepath.Join(t.TempDir(), "pv.sock")
	laddr := "unix://" + sock
	n := InitNode(t, node, NodeConfig{Version: version, Laddr: laddr})
	insts, pub := haInstances(t, bin, n.ChainID, cluster, 3)
	pk := cmted25519.PubKey(pub)
	n.SetValidator(t, pk)
	for _, in := range insts {
		in.start(t, laddr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, in := range insts {
				t.Logf("%s:\n%s", in.name, tail(in.logs(), 40))
			}
			t.Logf("node:\n%s", tail(n.Logs(), 30))
		}
	})
	n.Start(t, node)
	tryBlocks := func(k int64, within time.Duration) (time.Duration, error) {
		wctx, cancel := context.WithTimeout(ctx, within)
		defer cancel()
		start := time.Now()
		h, _ := n.Height(wctx)
		err := n.WaitHeight(wctx, h+k)
		return time.Since(start), err
	}
	waitBlocks := func(what string, k int64) time.Duration {
		t.Helper()
		took, err := tryBlocks(k, 90*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return took
	}
	// Refused votes stall a single-validator chain until its node
	// restarts: CometBFT waits for +2/3 prevotes before it times a round
	// out (in a real network the other validators' votes move it on).
	restartNode := func() {
		n.Stop()
		os.Remove(sock) // a killed node leaves its socket behind
		n.Start(t, node)
	}
	waitBlocks("start", 4)
	if err := n.VerifyCommits(ctx, 1, 4, pk); err != nil {
		t.Fatal(err)
	}

	// The host of the signing instance dies: another instance, already
	// connected and waiting, takes over.
	active := signing(insts, 2*time.Second)
	if active == nil {
		t.Fatal("no instance is signing")
	}
	active.kill()
	took := waitBlocks("after killing the signing instance", 3)
	next := signing(insts, 2*time.Second)
	if next == nil || next == active {
		t.Fatalf("no other instance took over (signing: %v)", next)
	}
	t.Logf("killed %s; %s took over, 3 blocks in %v", active.name, next.name, took.Round(time.Millisecond))

	// One etcd member (the leader) dies: the cluster keeps quorum.
	// A commit that meets the election (slow on a loaded machine) fails
	// closed, and the single-validator chain then stalls on it.
	leader := cluster.Leader()
	cluster.Stop(leader)
	var err error
	if took, err = tryBlocks(3, 20*time.Second); err != nil {
		t.Logf("a commit during the leader election was refused and the chain stalled; restarting the node")
		restartNode()
		took = waitBlocks("after killing the etcd leader and restarting the node", 3)
	}
	t.Logf("etcd member %d (leader) killed: 3 blocks in %v", leader, took.Round(time.Millisecond))

	// A second member dies: no quorum, no signature, no block.
	for i := range 3 {
		if i != leader {
			cluster.Stop(i)
			break
		}
	}
	time.Sleep(2 * time.Second) // a block already voted may still commit
	h1, _ := n.Height(ctx)
	time.Sleep(6 * time.Second)
	h2, _ := n.Height(ctx)
	if h2 != h1 {
		t.Fatalf("blocks produced without etcd quorum: %d -> %d", h1, h2)
	}
	refused := false
	for _, in := range insts {
		refused = refused || strings.Contains(in.logs(), "could not be committed")
	}
	if !refused {
		t.Fatal("no instance logged a refusal for lack of quorum")
	}
	if err := cluster.RestartStopped(); err != nil {
		t.Fatal(err)
	}
	// The requests refused meanwhile were the only validator's votes.
	resumed := "quorum back"
	if took, err = tryBlocks(3, 15*time.Second); err != nil {
		t.Logf("the single-validator chain stalled on the refused votes; restarting the node")
		restartNode()
		took = waitBlocks("after quorum returned and the node restarted", 3)
		resumed = "quorum back and the node restarted"
	}
	t.Logf("no quorum: height stayed at %d for 6s; %s: 3 blocks in %v", h2, resumed, took.Round(time.Millisecond))

	// The killed instance comes back and joins as a standby.
	active.start(t, laddr)
	waitBlocks("after the killed instance returned", 3)
	h, _ := n.Height(ctx)
	if err := n.VerifyCommits(ctx, h-3, h-1, pk); err != nil {
		t.Fatal(err)
	}
	positions := checkReleased(t, insts)
	t.Logf("%d blocks, %d positions signed across %d instances, no conflicting signature", h, positions, len(insts))
}

// TestHAFaultInjection runs the fault-injection checker across instances:
// three instances on one etcd cluster, each facing its own validator-side
// client, get the same and conflicting requests at once, while instances
// are SIGKILLed and restarted and etcd members are stopped and restarted
// (sometimes quorum is lost). No two different payloads (timestamps aside)
// may ever be released for one height/round/step, by any instance.
//
// TMKMS_FAULT_SECONDS (default 20) sets the length.
func TestHAFaultInjection(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	duration := time.Duration(envInt("TMKMS_FAULT_SECONDS", 20)) * time.Second
	chain := "ha-fault-chain"
	bin := Programs(t)
	cluster := etcdlocal.StartT(t, 3)
	insts, pub := haInstances(t, bin, chain, cluster, 3)
	stats := &faultStats{}
	d := &faultDriver{chain: chain, pk: cmted25519.PubKey(pub), stats: stats, released: map[signstate.HRS][]byte{}}
	clients, laddrs := startEach(t, chain, insts)

	var etcdKills, quorumLosses int
	heights := injectFaults(duration, 500*time.Millisecond, 1500*time.Millisecond,
		func(h int64) bool { return d.haHeight(clients, insts, h) },
		func() bool {
			switch r := rand.IntN(4); r {
			case 0, 1: // an instance's host dies and comes back
				in := insts[rand.IntN(len(insts))]
				in.kill()
				stats.count(&stats.kills)
				time.Sleep(time.Duration(rand.IntN(1000)) * time.Millisecond)
				in.start(t, laddrs[indexOf(insts, in)])
				stats.count(&stats.restarts)
			case 2, 3: // one etcd member dies, or two (quorum lost), briefly
				n := r - 1
				etcdKills += n
				if n == 2 {
					quorumLosses++
				}
				return etcdOutage(t, cluster, n)
			}
			return true
		})
	t.Logf("HA fault injection: %d heights, %d instance kills, %d etcd member kills (%d quorum losses), %d signatures, %d refusals (of %d conflicting requests), %d repeats answered identically across instances, %d unavailable answers, violations = %d",
		heights, stats.kills, etcdKills, quorumLosses, stats.signatures, stats.refusals, stats.conflictsSent, stats.duplicatesOK, stats.unavailable, len(stats.violations))
	for _, v := range stats.violations {
		t.Error(v)
	}
	if stats.kills == 0 || etcdKills == 0 {
		t.Error("the run injected no faults")
	}
	if stats.conflictsSent == 0 || stats.duplicatesOK == 0 {
		t.Error("the run raced no requests across instances")
	}
}

// startEach starts every instance facing a node side of its own, waits
// for each to connect, and shows their logs if the test fails. It returns
// the node sides and their addresses, by instance.
func startEach(t *testing.T, chain string, insts []*haInstance) ([]*cmtprivval.SignerClient, []string) {
	t.Helper()
	var clients []*cmtprivval.SignerClient
	var laddrs []string
	for i, in := range insts {
		c, sock := nodeSide(t, chain)
		clients = append(clients, c)
		laddrs = append(laddrs, "unix://"+sock)
		in.start(t, laddrs[i])
	}
	for i, c := range clients {
		if err := c.WaitForConnection(60 * time.Second); err != nil {
			t.Fatalf("instance %d did not connect: %v\n%s", i, err, insts[i].logs())
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, in := range insts {
				t.Logf("%s:\n%s", in.name, tail(in.logs(), 30))
			}
		}
	})
	return clients, laddrs
}

func indexOf(insts []*haInstance, in *haInstance) int {
	for i, x := range insts {
		if x == in {
			return i
		}
	}
	return -1
}

// haHeight signs a proposal, a prevote and a precommit at h on every
// instance at once: one instance gets the block, another a conflicting
// block, the third the block with another timestamp. Each step is retried
// until some instance has released the block; false if none ever does.
func (d *faultDriver) haHeight(clients []*cmtprivval.SignerClient, insts []*haInstance, h int64) bool {
	for _, step := range []signstate.Step{signstate.StepPropose, signstate.StepPrevote, signstate.StepPrecommit} {
		ts := time.Now().UTC()
		deadline := time.Now().Add(60 * time.Second)
		for {
			order := rand.Perm(len(clients))
			var wg sync.WaitGroup
			for k, i := range order {
				alt, at := byte(0), ts
				switch k {
				case 1:
					alt = 0xB
					d.stats.mu.Lock()
					d.stats.conflictsSent++
					d.stats.mu.Unlock()
				case 2:
					at = ts.Add(time.Second)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					d.signOn(clients[i], filepath.Join(insts[i].home, "state", "priv_validator_state.json"), h, step, alt, at)
				}()
			}
			wg.Wait()
			d.stats.mu.Lock()
			_, done := d.released[signstate.HRS{Height: h, Step: step}]
			d.stats.mu.Unlock()
			if done {
				break
			}
			if time.Now().After(deadline) {
				d.stats.violate("no instance signed %d/%s within 60s", h, step)
				return false
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return true
}
