package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	cmtproto "github.com/cometbft/cometbft/api/cometbft/types/v1"
	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	cmtprivval "github.com/cometbft/cometbft/privval"
	"github.com/cometbft/cometbft/types"

	"github.com/tmkms-nitro/tmkms-nitro/internal/ha/etcdlocal"
	"github.com/tmkms-nitro/tmkms-nitro/internal/localmode"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// faultStats are the fault-injection test's counts.
type faultStats struct {
	mu                                       sync.Mutex
	kills, restarts, signatures, refusals    int
	unavailable, conflictsSent, duplicatesOK int
	violations                               []string
}

func (s *faultStats) violate(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.violations = append(s.violations, fmt.Sprintf(format, args...))
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestFaultInjection drives the local stack (helper + enclave process +
// durable state) with a validator-side client sending proposals, prevotes
// and precommits, conflicting requests and timestamp-only repeats among
// them, while the enclave, the helper, or both are SIGKILLed at random and
// restarted. It checks that no two different payloads (timestamps aside)
// were ever signed for one height/round/step, that the state file is never
// behind a released signature, and that the stack always signs again.
//
// TMKMS_FAULT_SECONDS (default 20) sets the length: a long run is
// TMKMS_FAULT_SECONDS=3600 go test -run TestFaultInjection -timeout 2h -v ./internal/e2e/
func TestFaultInjection(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	duration := time.Duration(envInt("TMKMS_FAULT_SECONDS", 20)) * time.Second
	chain := "fault-chain"
	st := startLocalStack(t, chain, nil)
	bin, home, client, laddr := st.bin, st.home, st.client, st.laddr
	pk := cmted25519.PubKey(st.pub)
	stats := &faultStats{}
	helper := st.helper
	d := &faultDriver{client: client, chain: chain, pk: pk, stats: stats, statePath: filepath.Join(home, "state", "priv_validator_state.json"), released: map[signstate.HRS][]byte{}}
	heights := injectFaults(duration, 300*time.Millisecond, 1200*time.Millisecond,
		func(h int64) bool {
			ok := d.height(h)
			time.Sleep(20 * time.Millisecond) // a few dozen heights a second, so kills land mid-stream
			return ok
		},
		func() bool {
			switch rand.IntN(3) {
			case 0: // the enclave; its supervisor restarts it
				if pid, ok := localmode.FindEnclavePID(home); ok {
					syscall.Kill(pid, syscall.SIGKILL)
					stats.kills++
				}
			case 1: // the helper; a new one takes over the running enclave
				helper.stop(syscall.SIGKILL)
				stats.kills++
				helper = startLocal(t, bin, home, laddr)
				stats.restarts++
			case 2: // both
				helper.stop(syscall.SIGKILL)
				if pid, ok := localmode.FindEnclavePID(home); ok {
					syscall.Kill(pid, syscall.SIGKILL)
				}
				stats.kills += 2
				helper = startLocal(t, bin, home, laddr)
				stats.restarts++
			}
			return true
		})
	t.Logf("fault injection: %d heights, %d kills, %d restarts, %d signatures, %d refusals (of %d conflicting requests), %d timestamp-only repeats answered identically, %d unavailable answers, violations = %d",
		heights, stats.kills, stats.restarts, stats.signatures, stats.refusals, stats.conflictsSent, stats.duplicatesOK, stats.unavailable, len(stats.violations))
	for _, v := range stats.violations {
		t.Error(v)
	}
	if stats.kills == 0 {
		t.Error("no process was killed")
	}
}

// injectFaults drives heights 1, 2, ... through height until duration has
// passed or height fails, while inject runs after each pause of minPause
// and up to spread more, until it returns false. It returns the number of
// heights driven, once the last injection has ended.
func injectFaults(duration, minPause, spread time.Duration, height func(int64) bool, inject func() bool) int {
	stop := make(chan struct{})
	injectorDone := make(chan struct{})
	go func() {
		defer close(injectorDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(minPause + rand.N(spread)):
			}
			if !inject() {
				return
			}
		}
	}()
	heights := 0
	for end := time.Now().Add(duration); time.Now().Before(end); heights++ {
		if !height(int64(heights + 1)) {
			break
		}
	}
	close(stop)
	<-injectorDone
	return heights
}

// etcdOutage stops n members of cluster in a row, from a random one, and
// restarts them after a while; false if they did not come back.
func etcdOutage(t *testing.T, cluster *etcdlocal.Cluster, n int) bool {
	size := len(cluster.Endpoints)
	a := rand.IntN(size)
	for i := range n {
		cluster.Stop((a + i) % size)
	}
	time.Sleep(time.Duration(300+rand.IntN(1200)) * time.Millisecond)
	if err := cluster.RestartStopped(); err != nil {
		t.Error(err)
		return false
	}
	return true
}

func (s *faultStats) count(n *int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	*n++
}

type faultDriver struct {
	client    *cmtprivval.SignerClient
	chain     string
	pk        cmted25519.PubKey
	stats     *faultStats
	statePath string
	released  map[signstate.HRS][]byte // sign bytes with the timestamp zeroed
	// hostHostile: the test itself rolls state files back, so a file
	// behind a released signature is the attack, not a failure.
	hostHostile bool
}

func faultBlock(h int64, alt byte) cmtproto.BlockID {
	b := byte(h) ^ alt
	return cmtproto.BlockID{Hash: bytes.Repeat([]byte{b, alt, 1}, 11)[:32], PartSetHeader: cmtproto.PartSetHeader{Total: 1, Hash: bytes.Repeat([]byte{b, 2}, 16)}}
}

// height signs a proposal, a prevote and a precommit at h, round 0, each
// retried until the stack answers; false if the stack never came back.
func (d *faultDriver) height(h int64) bool {
	steps := []signstate.Step{signstate.StepPropose, signstate.StepPrevote, signstate.StepPrecommit}
	for _, step := range steps {
		ts := time.Now().UTC()
		if !d.signUntilDone(h, step, 0, ts) {
			return false
		}
		if rand.IntN(3) == 0 { // a conflicting request: must never be signed
			d.stats.conflictsSent++
			d.sign(h, step, 0xB, ts)
		}
		if rand.IntN(3) == 0 { // a timestamp-only repeat: must get the same signature
			d.sign(h, step, 0, ts.Add(time.Second))
		}
	}
	return true
}

func (d *faultDriver) signUntilDone(h int64, step signstate.Step, alt byte, ts time.Time) bool {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if err := d.sign(h, step, alt, ts); err == nil {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.stats.violate("the stack did not sign %d/%s within 60s", h, step)
	return false
}

// sign sends one request and checks the answer against everything
// released before.
func (d *faultDriver) sign(h int64, step signstate.Step, alt byte, ts time.Time) error {
	return d.signOn(d.client, d.statePath, h, step, alt, ts)
}

// signOn is sign through one of several clients, the one of the instance
// whose state file is statePath. It is safe for concurrent use.
func (d *faultDriver) signOn(client *cmtprivval.SignerClient, statePath string, h int64, step signstate.Step, alt byte, ts time.Time) error {
	hrs := signstate.HRS{Height: h, Round: 0, Step: step}
	var err error
	if step == signstate.StepPropose {
		p := &cmtproto.Proposal{Type: types.ProposalType, Height: h, PolRound: -1, BlockID: faultBlock(h, alt), Timestamp: ts}
		if err = client.SignProposal(d.chain, p); err == nil {
			sig, sb := p.Signature, types.ProposalSignBytes(d.chain, p)
			p.Timestamp = time.Time{}
			d.check(hrs, sig, sb, types.ProposalSignBytes(d.chain, p), statePath)
		}
	} else {
		typ := types.PrevoteType
		if step == signstate.StepPrecommit {
			typ = types.PrecommitType
		}
		v := &cmtproto.Vote{Type: typ, Height: h, BlockID: faultBlock(h, alt), Timestamp: ts, ValidatorAddress: d.pk.Address()}
		if err = client.SignVote(d.chain, v, true); err == nil {
			sig, sb := v.Signature, types.VoteSignBytes(d.chain, v)
			v.Timestamp = time.Time{}
			d.check(hrs, sig, sb, types.VoteSignBytes(d.chain, v), statePath)
		}
	}
	var rse *cmtprivval.RemoteSignerError
	d.stats.mu.Lock()
	defer d.stats.mu.Unlock()
	switch {
	case err == nil:
	case errors.As(err, &rse) && rse.Code == 2:
		d.stats.refusals++
	default:
		d.stats.unavailable++
	}
	return err
}

func (d *faultDriver) check(hrs signstate.HRS, sig, sb, noTime []byte, statePath string) {
	if !d.pk.VerifySignature(sb, sig) {
		d.stats.violate("invalid signature at %s", hrs)
	}
	d.stats.mu.Lock()
	prev, ok := d.released[hrs]
	switch {
	case !ok:
		d.released[hrs] = noTime
		d.stats.signatures++
	case bytes.Equal(prev, noTime):
		d.stats.duplicatesOK++
	}
	d.stats.mu.Unlock()
	if ok && !bytes.Equal(prev, noTime) {
		d.stats.violate("DOUBLE SIGN at %s: two different payloads released", hrs)
	}
	if d.hostHostile {
		return
	}
	st, err := signstate.Peek(statePath)
	if err != nil {
		d.stats.violate("state file unreadable after a signature at %s: %v", hrs, err)
	} else if st.HRS().Compare(hrs) < 0 {
		d.stats.violate("state file at %s is behind the released signature at %s", st.HRS(), hrs)
	}
}
