package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/nitrocli"
)

func runEnclave(ctx context.Context, env *Env, args []string) error {
	return subcommands(ctx, env, args, "enclave run|stop|info [flags]\n\nWrappers around nitro-cli (set $TMKMS_NITRO_CLI to use another path).",
		map[string]func(context.Context, *Env, []string) error{"run": runEnclaveRun, "stop": runEnclaveStop, "info": runEnclaveInfo})
}

type runFlags struct{ o nitrocli.RunOptions }

func (r *runFlags) register(fs interface {
	StringVar(*string, string, string, string)
	IntVar(*int, string, int, string)
	BoolVar(*bool, string, bool, string)
}) {
	fs.StringVar(&r.o.EIFPath, "eif-path", "tmkms.eif", "the enclave image")
	fs.IntVar(&r.o.CPUCount, "cpu-count", 2, "vCPUs for the enclave")
	fs.IntVar(&r.o.MemoryMiB, "memory", 512, "memory for the enclave, MiB")
	fs.BoolVar(&r.o.Debug, "debug", false, "debug mode: console readable, but all PCRs are zero (key policy must pin zeros)")
}

func runEnclaveRun(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "enclave run", "[--eif-path F] [--cpu-count 2] [--memory 512] [--cid N] [--debug]", "Starts the signer's enclave with nitro-cli run-enclave.")
	var r runFlags
	r.register(fs)
	cid := fs.Uint("cid", 0, "the enclave's CID (default: chosen by nitro-cli)")
	if err := Parse(fs, args, 0); err != nil {
		return err
	}
	r.o.CID = uint32(*cid)
	e, err := nitrocli.Tools{}.Run(ctx, r.o)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "enclave %s running with CID %d\n", e.EnclaveID, e.EnclaveCID)
	return nil
}

func runEnclaveStop(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "enclave stop", "[--enclave-id ID]", "Terminates the enclave (all enclaves if no id is given).")
	id := fs.String("enclave-id", "", "the enclave to terminate")
	if err := Parse(fs, args, 0); err != nil {
		return err
	}
	return nitrocli.Tools{}.Terminate(ctx, *id)
}

func runEnclaveInfo(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "enclave info", "", "Prints the running enclaves (nitro-cli describe-enclaves).")
	if err := Parse(fs, args, 0); err != nil {
		return err
	}
	es, err := nitrocli.Tools{}.Describe(ctx)
	if err != nil {
		return err
	}
	out, _ := json.MarshalIndent(es, "", "  ")
	fmt.Fprintln(env.Stdout, string(out))
	return nil
}

func runLaunchAll(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "launch-all", "-c tmkms.toml [--eif-path F] [--cpu-count 2] [--memory 512] [--debug]",
		"Does what tmkms-light's run script does, in one process: starts the enclave (or uses the one running),\n"+
			"starts vsock-proxy for the region's KMS endpoint, and runs start; on SIGINT/SIGTERM, or if start\n"+
			"fails, it terminates the enclave and the proxy.")
	var r runFlags
	r.register(fs)
	path := fs.String("c", "tmkms.toml", "configuration file")
	enclaveTimeout := fs.Duration("enclave-timeout", 30*time.Second, "give up when the enclave does not answer this long after start")
	proxyConfig := fs.String("proxy-config", "", "vsock-proxy allowlist (default: vsock-proxy's own, /etc/nitro_enclaves/vsock-proxy.yaml)")
	if err := Parse(fs, args, 0); err != nil {
		return err
	}
	cfg, err := loadConfig(*path, 0)
	if err != nil {
		return err
	}
	tools := nitrocli.Tools{}
	r.o.CID = cfg.EnclaveConfigCID
	e, err := tools.Run(ctx, r.o)
	if err != nil {
		return err
	}
	log := newLogger(env, cfg.LogFormat == "json")
	log.Info("enclave started", "enclave_id", e.EnclaveID, "cid", e.EnclaveCID)
	defer func() {
		tctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := tools.Terminate(tctx, e.EnclaveID); err != nil {
			log.Error("failed to terminate the enclave", "err", err)
		} else {
			log.Info("enclave terminated", "enclave_id", e.EnclaveID)
		}
	}()
	pctx, stopProxy := context.WithCancel(ctx)
	proxy, err := tools.Proxy(pctx, cfg.AWSRegion, enclaveproto.KMSProxyPort, *proxyConfig)
	if err != nil {
		stopProxy()
		return err
	}
	defer func() { stopProxy(); proxy.Wait() }()
	err = runStart(ctx, env, []string{"-c", *path, "--cid", fmt.Sprint(e.EnclaveCID), "--enclave-timeout", enclaveTimeout.String()})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
