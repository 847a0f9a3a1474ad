package cli

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/tmkms-nitro/tmkms-nitro/internal/preflight"
)

// runCheck is the preflight check: it only looks (see package preflight)
// and fails when any check fails.
func runCheck(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "check", "-c tmkms.toml [--cid N] [--pre-launch] [--proxy-config F]",
		"Checks this host for tmkms-nitro and prints one line per check, PASS, WARN, FAIL or SKIP, with a hint\n"+
			"for each problem: the configuration; the sealed key and state files (present, parseable, private);\n"+
			"nitro-cli and the enclave at the CID; vsock-proxy for the region's KMS endpoint and its allowlist;\n"+
			"AWS credentials; the region and KMS key of the sealed keys; the validator address (never connected to).\n"+
			"It changes nothing. The exit status is 1 if any check fails.")
	path := fs.String("c", "tmkms.toml", "configuration file")
	cid := fs.Uint("cid", 0, "the enclave's vsock CID (default: enclave_config_cid of the configuration)")
	preLaunch := fs.Bool("pre-launch", false, "the service is not started yet: no enclave or vsock-proxy running is expected")
	proxyConfig := fs.String("proxy-config", preflight.DefaultProxyConfig, "the vsock-proxy allowlist to check")
	procDir := fs.String("proc", preflight.DefaultProcDir, "where to look for a running vsock-proxy")
	timeout := fs.Duration("timeout", preflight.DefaultTimeout, "limit for each check that waits (nitro-cli, AWS credentials, DNS)")
	if err := Parse(fs, args, 0); err != nil {
		return err
	}
	if *cid > math.MaxUint32 {
		return WithHint(errors.New("check: --cid is out of range"), "pass the CID 'nitro-cli describe-enclaves' shows")
	}
	rs := preflight.Run(ctx, preflight.Options{
		ConfigPath:  *path,
		CID:         uint32(*cid),
		PreLaunch:   *preLaunch,
		ProcDir:     *procDir,
		ProxyConfig: *proxyConfig,
		NitroCLI:    env.getenv("TMKMS_NITRO_CLI"),
		VsockProxy:  env.getenv("TMKMS_VSOCK_PROXY"),
		Timeout:     *timeout,
	})
	if err := preflight.Write(env.Stdout, rs); err != nil {
		return err
	}
	if n := preflight.Count(rs, preflight.Fail); n > 0 {
		return fmt.Errorf("check: %d of %d checks failed", n, len(rs))
	}
	return nil
}
