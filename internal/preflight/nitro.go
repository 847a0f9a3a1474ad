package preflight

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/nitrocli"
)

func (r *runner) kmsHost() string { return "kms." + r.cfg.AWSRegion + ".amazonaws.com" }

// notRunning reports something the service starts itself: before launch
// its absence is expected.
func (r *runner) notRunning(name, detail, hint string) Result {
	if r.o.PreLaunch {
		return pass(name, detail+" (expected before launch: launch-all starts it)")
	}
	return fail(name, detail, hint)
}

func (r *runner) checkNitroCLI(context.Context) Result {
	path, err := exec.LookPath(r.o.NitroCLI)
	if err != nil {
		return fail(CheckNitroCLI, fmt.Sprintf("%s not found: %v", r.o.NitroCLI, err),
			"install the AWS Nitro Enclaves CLI (Amazon Linux 2023: dnf install aws-nitro-enclaves-cli), or set $TMKMS_NITRO_CLI")
	}
	r.nitroCLI = path
	return pass(CheckNitroCLI, path)
}

func (r *runner) checkEnclave(ctx context.Context) Result {
	if r.nitroCLI == "" {
		return skipped(CheckEnclave, "needs "+CheckNitroCLI)
	}
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	es, err := nitrocli.Tools{NitroCLI: r.nitroCLI}.Describe(ctx)
	if err != nil {
		return fail(CheckEnclave, err.Error(), "the service user must be in the 'ne' group (usermod -aG ne USER) and the allocator running (systemctl status nitro-enclaves-allocator)")
	}
	cid := r.cfg.EnclaveConfigCID
	for _, e := range es {
		if e.EnclaveCID == cid {
			return r.enclaveAt(e)
		}
	}
	others := make([]string, 0, len(es))
	for _, e := range es {
		others = append(others, strconv.FormatUint(uint64(e.EnclaveCID), 10))
	}
	detail := fmt.Sprintf("no enclave runs with CID %d", cid)
	if len(others) > 0 {
		detail += " (running: CID " + strings.Join(others, ", ") + ")"
	}
	return r.notRunning(CheckEnclave, detail,
		"start the service (launch-all starts the enclave), or pass --cid with the CID 'nitro-cli describe-enclaves' shows")
}

func (r *runner) enclaveAt(e nitrocli.Enclave) Result {
	detail := fmt.Sprintf("enclave %s %s with CID %d, %d CPUs, %d MiB", e.EnclaveID, e.State, e.EnclaveCID, e.NumberOfCPUs, e.MemoryMiB)
	switch {
	case e.State != "RUNNING":
		return fail(CheckEnclave, detail, "tmkms-nitro-helper enclave stop --enclave-id "+e.EnclaveID+", then restart the service")
	case r.o.PreLaunch:
		return warn(CheckEnclave, detail+": launch-all cannot start another with this CID",
			"stop it first (tmkms-nitro-helper enclave stop --enclave-id "+e.EnclaveID+"), or run only 'start' for it")
	case strings.Contains(e.Flags, "DEBUG"):
		return warn(CheckEnclave, detail+" in debug mode: all its PCRs are zero",
			"debug mode is for trying things out: KMS releases the key only if the policy pins the zero PCR0")
	}
	return pass(CheckEnclave, detail)
}

// proxyProcess is a running vsock-proxy and its positional arguments.
type proxyProcess struct {
	pid                          string
	localPort, remoteHost, rPort string
	config                       string // --config, when given
}

func (r *runner) checkVsockProxy(context.Context) Result {
	procs, err := r.findProxies()
	if err != nil {
		return fail(CheckVsockProxy, err.Error(), "check needs to read "+r.o.ProcDir)
	}
	port := strconv.Itoa(enclaveproto.KMSProxyPort)
	for _, p := range procs {
		if p.localPort == port && p.remoteHost == r.kmsHost() && p.rPort == "443" {
			detail := fmt.Sprintf("pid %s forwards vsock port %s to %s:443", p.pid, port, r.kmsHost())
			if p.config != "" && p.config != r.o.ProxyConfig {
				detail += " (its allowlist is " + p.config + ": pass --proxy-config " + p.config + ")"
			}
			return pass(CheckVsockProxy, detail)
		}
	}
	for _, p := range procs {
		if p.localPort == port {
			return fail(CheckVsockProxy, fmt.Sprintf("pid %s forwards vsock port %s to %s:%s, not %s:443: the enclave's KMS calls would go there",
				p.pid, port, p.remoteHost, p.rPort, r.kmsHost()),
				"stop it (AWS's nitro-enclaves-vsock-proxy service proxies the instance's region on port 8000), or set aws_region to its region")
		}
	}
	if _, err := exec.LookPath(r.o.VsockProxy); err != nil {
		return fail(CheckVsockProxy, fmt.Sprintf("%s not found: %v", r.o.VsockProxy, err),
			"install the AWS Nitro Enclaves CLI (it brings vsock-proxy), or set $TMKMS_VSOCK_PROXY")
	}
	return r.notRunning(CheckVsockProxy, fmt.Sprintf("no vsock-proxy forwards vsock port %s to %s:443", port, r.kmsHost()),
		fmt.Sprintf("start the service (launch-all starts it), or by hand: vsock-proxy %s %s 443 &", port, r.kmsHost()))
}

// findProxies lists the processes whose program (or script, for an
// interpreter) is named like the vsock-proxy tool.
func (r *runner) findProxies() ([]proxyProcess, error) {
	entries, err := os.ReadDir(r.o.ProcDir)
	if err != nil {
		return nil, fmt.Errorf("preflight: cannot list processes: %w", err)
	}
	name := filepath.Base(r.o.VsockProxy)
	var out []proxyProcess
	for _, e := range entries {
		if _, err := strconv.ParseUint(e.Name(), 10, 32); err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(r.o.ProcDir, e.Name(), "cmdline"))
		if err != nil {
			continue // gone, or hidden from us
		}
		if p, ok := parseProxyCmdline(name, raw); ok {
			p.pid = e.Name()
			out = append(out, p)
		}
	}
	return out, nil
}

// parseProxyCmdline recognises "vsock-proxy [flags] LOCAL_PORT HOST PORT"
// in a NUL-separated /proc/PID/cmdline, also when run through an
// interpreter ("/bin/sh /usr/bin/vsock-proxy ...").
func parseProxyCmdline(name string, raw []byte) (proxyProcess, bool) {
	args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	switch {
	case len(args) > 0 && filepath.Base(args[0]) == name:
		args = args[1:]
	case len(args) > 1 && filepath.Base(args[1]) == name:
		args = args[2:]
	default:
		return proxyProcess{}, false
	}
	var p proxyProcess
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--config" && i+1 < len(args):
			p.config = args[i+1]
			i++
		case strings.HasPrefix(a, "--config="):
			p.config = strings.TrimPrefix(a, "--config=")
		case (a == "-w" || a == "--num_workers") && i+1 < len(args):
			i++
		case strings.HasPrefix(a, "-"):
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) < 3 {
		return proxyProcess{}, false
	}
	p.localPort, p.remoteHost, p.rPort = pos[0], pos[1], pos[2]
	return p, true
}

// allowlist is vsock-proxy's configuration file.
type allowlist struct {
	Allowlist []struct {
		Address string `yaml:"address"`
		Port    int    `yaml:"port"`
	} `yaml:"allowlist"`
}

func (r *runner) checkAllowlist(context.Context) Result {
	path, host := r.o.ProxyConfig, r.kmsHost()
	entry := fmt.Sprintf("- {address: %s, port: 443}", host)
	data, err := readLimited(path, 1<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return fail(CheckAllowlist, path+" does not exist: vsock-proxy refuses every host without an allowlist",
			"install deploy/vsock-proxy.yaml there, or write one with 'allowlist:' and the line "+entry)
	}
	if err != nil {
		return fail(CheckAllowlist, err.Error(), "pass --proxy-config with the allowlist vsock-proxy reads")
	}
	var a allowlist
	if err := yaml.Unmarshal(data, &a); err != nil {
		return fail(CheckAllowlist, fmt.Sprintf("%s: %v", path, err), "vsock-proxy cannot read it either; compare with deploy/vsock-proxy.yaml")
	}
	for _, e := range a.Allowlist {
		// vsock-proxy compares the host name exactly.
		if e.Address == host && e.Port == 443 {
			return pass(CheckAllowlist, fmt.Sprintf("%s allows %s:443", path, host))
		}
	}
	return fail(CheckAllowlist, fmt.Sprintf("%s does not allow %s:443: vsock-proxy would refuse to start", path, host),
		"add this line under 'allowlist:' in "+path+": "+entry)
}
