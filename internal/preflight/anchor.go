package preflight

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/tmkms-nitro/tmkms-nitro/internal/sealedkey"
)

// checkAnchor says who the enclave trusts for its double-sign state across
// restarts. Without an anchor it is this host (a warning, whatever else
// passes). With one, it checks what the host can: that the sealed files
// agree (the key is bound to this anchor and this chain, or the enclave
// refuses) and that the members' ports answer. TLS, the credentials and
// quorum are the enclave's to check: this host holds none of them.
func (r *runner) checkAnchor(ctx context.Context) Result {
	key, err := readSealed(r.cfg.SealedConsensusKeyPath)
	if err != nil {
		return skipped(CheckAnchor, "the consensus key cannot be read (see consensus-key)")
	}
	if !key.Legacy() && !key.AllowsChain(r.cfg.ChainID) {
		return fail(CheckAnchor, fmt.Sprintf("the consensus key is sealed for chains %q only, not chain_id %q", key.ChainIDs, r.cfg.ChainID),
			"the enclave refuses to sign for another chain; a key's chains are fixed when it is sealed")
	}
	h := r.cfg.HA
	if !h.Anchored() {
		if key.Anchor != "" {
			return fail(CheckAnchor, fmt.Sprintf("the consensus key is bound to anchor %s, but [ha] has no sealed_anchor_path", short(key.Anchor)),
				"the enclave signs nothing without its anchor: restore the [ha] table init wrote, with sealed_anchor_path")
		}
		what := "no anchor: across enclave restarts the enclave trusts this host's state file; a host that rolls it back or starts a second enclave can get a conflicting signature"
		if h != nil {
			what = "[ha] without an anchor: this helper relays decisions to etcd and is trusted with the outcome"
		}
		return warn(CheckAnchor, what, "seal an anchor with init --ha-endpoints ... so that a compromised host can only stop signing (see docs/anchor.md)")
	}
	anchor, err := readSealed(h.SealedAnchorPath)
	switch {
	case err != nil:
		return fail(CheckAnchor, "sealed_anchor_path: "+err.Error(), "point sealed_anchor_path at the anchor.sealed that init wrote")
	case anchor.Purpose != sealedkey.Anchor:
		return fail(CheckAnchor, fmt.Sprintf("sealed_anchor_path holds a sealed %s key, not an anchor", anchor.Purpose), "point sealed_anchor_path at the anchor.sealed that init wrote")
	case key.Anchor != "" && key.Anchor != anchor.Anchor:
		return fail(CheckAnchor, fmt.Sprintf("the consensus key is bound to anchor %s, but sealed_anchor_path holds anchor %s", short(key.Anchor), short(anchor.Anchor)),
			"the enclave refuses another anchor: use the anchor.sealed sealed with this key")
	}
	up := r.reachable(ctx, h.Endpoints)
	detail := fmt.Sprintf("anchor %s; %d of %d etcd members accept TCP connections (TLS, credentials and quorum are checked by the enclave, which alone holds them)",
		short(anchor.Anchor), up, len(h.Endpoints))
	if key.Anchor == "" {
		return warn(CheckAnchor, detail+"; the consensus key is not bound to it", "a host could drop the anchor from this file: seal a key bound to it (init --ha-*)")
	}
	if 2*up <= len(h.Endpoints) {
		return fail(CheckAnchor, detail, "the enclave signs nothing without a majority of members: check the relays' network path to etcd")
	}
	return pass(CheckAnchor, detail)
}

func readSealed(path string) (*sealedkey.Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return sealedkey.Parse(b)
}

// reachable counts the endpoints that accept a TCP connection, as the
// helper's relays would make.
func (r *runner) reachable(ctx context.Context, endpoints []string) int {
	n := 0
	for _, e := range endpoints {
		u, err := url.Parse(e)
		if err != nil {
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
		var d net.Dialer
		c, err := d.DialContext(dctx, "tcp", u.Host)
		cancel()
		if err == nil {
			c.Close()
			n++
		}
	}
	return n
}

func short(fp string) string {
	if len(fp) > 16 {
		return fp[:16]
	}
	return strings.ToLower(fp)
}
