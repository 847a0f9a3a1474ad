package preflight

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/tmkms-nitro/tmkms-nitro/internal/transport"
)

func defaultLookupHost(ctx context.Context, host string) ([]string, error) {
	return net.DefaultResolver.LookupHost(ctx, host)
}

// checkValidator looks at each validator address without connecting to
// it: the node would take a connection on priv_validator_laddr for its
// signer. The first address that does not pass is reported.
func (r *runner) checkValidator(ctx context.Context) Result {
	var passed []string
	for _, s := range r.cfg.Addresses {
		res := r.validator(ctx, s)
		if res.Status != Pass {
			return res
		}
		passed = append(passed, res.Detail)
	}
	return pass(CheckValidator, strings.Join(passed, "; "))
}

func (r *runner) validator(ctx context.Context, s string) Result {
	a, err := transport.ParseValidator(s)
	if err != nil {
		return fail(CheckValidator, err.Error(), "fix address in tmkms.toml")
	}
	if a.Path != "" { // a socket file, else a host name or address
		return r.unixValidator(a.Path)
	}
	return r.tcpValidatorHost(ctx, a.Host)
}

func (r *runner) unixValidator(path string) Result {
	hint := "start the node with priv_validator_laddr = \"unix://" + path + "\" in its config.toml"
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		dir := filepath.Dir(path)
		if _, derr := os.Stat(dir); derr != nil {
			return r.validatorDown(fmt.Sprintf("the socket's directory %s does not exist", dir),
				"mkdir "+dir+" (the systemd unit in deploy/ creates it); then "+hint)
		}
		return r.validatorDown(path+" does not exist: is the node running?", hint)
	case err != nil:
		return fail(CheckValidator, err.Error(), "run check as the service user")
	case fi.Mode().Type() != fs.ModeSocket:
		return fail(CheckValidator, path+" exists but is not a socket", "address must name the node's priv_validator_laddr socket")
	}
	return pass(CheckValidator, "unix socket "+path+" exists (not connected to: the node would take it for its signer)")
}

func (r *runner) tcpValidatorHost(ctx context.Context, hostport string) Result {
	h, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fail(CheckValidator, err.Error(), "address must be tcp://[node_id@]host:port")
	}
	if net.ParseIP(h) != nil {
		return pass(CheckValidator, "tcp://"+hostport+" (an IP address; not connected to)")
	}
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	addrs, err := r.o.LookupHost(ctx, h)
	if err != nil || len(addrs) == 0 {
		return fail(CheckValidator, fmt.Sprintf("cannot resolve %s: %v", h, err),
			"check the host name in address, or use the node's IP address")
	}
	return pass(CheckValidator, fmt.Sprintf("%s resolves to %s (not connected to)", h, strings.Join(addrs, ", ")))
}

// validatorDown is a missing node socket: a warning before launch (the node
// may start later; the signer redials), a failure otherwise.
func (r *runner) validatorDown(detail, hint string) Result {
	if r.o.PreLaunch {
		return warn(CheckValidator, detail, hint)
	}
	return fail(CheckValidator, detail, hint)
}
