package preflight

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tmkms-nitro/tmkms-nitro/internal/ha"
	"github.com/tmkms-nitro/tmkms-nitro/internal/ha/etcdstore"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// checkHA reaches etcd as start would (same TLS, same keys) and reads the
// chain's decision and live instances. It writes nothing.
func (r *runner) checkHA(ctx context.Context) Result {
	h := r.cfg.HA
	st, err := etcdstore.Dial(r.cfg, nil, nil)
	if err != nil {
		return fail(CheckHA, err.Error(), "ca_file, cert_file and key_file in [ha] must be readable PEM files, and endpoints valid")
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	snap, err := st.Snapshot(ctx)
	if errors.Is(err, ha.ErrForged) {
		return fail(CheckHA, err.Error(), "another program writes under this key_prefix, or the record was tampered with: no instance signs until it is removed (after finding out which)")
	}
	if err != nil {
		return fail(CheckHA, err.Error(),
			"etcd must be reachable over TLS with this client certificate and have quorum (a majority of its members up); nothing is signed otherwise")
	}
	decision := "no decision yet"
	if snap.Decision != nil {
		decision = fmt.Sprintf("last decision %s by %s", snap.Decision, snap.By)
	}
	detail := fmt.Sprintf("etcd has quorum; %s: %s; instances alive: %s", snap.Key, decision, list(snap.Alive))
	if local, err := signstate.Peek(r.cfg.StateFilePath); err == nil && snap.Decision != nil && local.HRS().Compare(*snap.Decision) > 0 {
		return warn(CheckHA, detail+fmt.Sprintf("; the local state (%s) is ahead of the cluster's", local.HRS()),
			"etcd lost or rolled back the decision record (restored from a backup, or deleted): this instance's local state still protects it, other instances only know etcd's")
	}
	if slices.Contains(snap.Alive, h.Instance) {
		detail += "; " + h.Instance + " (this instance's name) is among them: this helper is running, or another signer uses the same name"
	}
	return pass(CheckHA, detail)
}

func list(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
