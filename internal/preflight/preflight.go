// Package preflight checks an EC2 host for tmkms-nitro, before the service
// starts or while it runs: the configuration, the sealed key and state
// files, nitro-cli and the enclave, vsock-proxy and its allowlist, the AWS
// credentials, the KMS region and key, and the validator address. Each check
// gives one Result (PASS, WARN, FAIL or SKIP) with a hint for the operator.
//
// The package only looks. It must never create, modify, lock or migrate a
// file (the state file is read with signstate.ParseJSON or signstate.Peek,
// never signstate.Open), start or stop a process or an enclave, connect to
// the validator (a node takes any connection on priv_validator_laddr for its
// signer), or print a secret. The only traffic it causes is the AWS
// credential lookup (on EC2, the instance metadata service, with a short
// timeout) and a DNS lookup of a tcp:// validator's host. Everything it
// touches on the host (/proc, the vsock-proxy allowlist, nitro-cli, the
// credential and DNS lookups) is an Option, so tests can provoke every
// failure in a temporary directory.
package preflight

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/tmkms-nitro/tmkms-nitro/internal/config"
	"github.com/tmkms-nitro/tmkms-nitro/internal/host"
	"github.com/tmkms-nitro/tmkms-nitro/internal/sealedkey"
)

// Status is a check's outcome.
type Status int

// Outcomes. Only Fail makes the whole check fail.
const (
	Pass Status = iota
	Warn
	Fail
	Skip // not run: a check it depends on failed
)

func (s Status) String() string {
	switch s {
	case Pass:
		return "PASS"
	case Warn:
		return "WARN"
	case Fail:
		return "FAIL"
	}
	return "SKIP"
}

// Check names, in the order Run reports them.
const (
	CheckConfig       = "config"
	CheckConsensusKey = "consensus-key"
	CheckIdentityKey  = "identity-key" // tcp:// validators only
	CheckStateFile    = "state-file"
	CheckNitroCLI     = "nitro-cli"
	CheckEnclave      = "enclave"
	CheckVsockProxy   = "vsock-proxy"
	CheckAllowlist    = "proxy-allowlist"
	CheckCredentials  = "credentials"
	CheckRegion       = "region"
	CheckKMSKey       = "kms-key"
	CheckValidator    = "validator"
	CheckHA           = "ha" // with an [ha] table without an anchor only
	CheckAnchor       = "anchor"
)

// Result is one check's outcome. Hint says what to do about a WARN or FAIL.
type Result struct {
	Name   string
	Status Status
	Detail string
	Hint   string
}

// Defaults of Options.
const (
	DefaultProcDir     = "/proc"
	DefaultProxyConfig = "/etc/nitro_enclaves/vsock-proxy.yaml"
	DefaultTimeout     = 5 * time.Second
)

// Options say what to check and where the host's pieces are. Zero values
// take the defaults.
type Options struct {
	ConfigPath string // tmkms.toml
	CID        uint32 // overrides enclave_config_cid when non-zero
	// PreLaunch: the service has not started yet. A missing enclave or
	// vsock-proxy process passes (launch-all starts them), an enclave
	// already at the CID is a warning (launch-all cannot start another),
	// and a missing validator socket is a warning (the node creates it,
	// and the signer redials until it does).
	PreLaunch   bool
	ProcDir     string // DefaultProcDir
	ProxyConfig string // DefaultProxyConfig: vsock-proxy's allowlist
	NitroCLI    string // nitro-cli's path or name; default "nitro-cli"
	VsockProxy  string // vsock-proxy's path or name; default "vsock-proxy"
	// Credentials retrieves the AWS credentials the helper would push; the
	// default is host.CredentialsFor (the SDK's default chain) under Timeout.
	Credentials func(ctx context.Context, cfg *config.Config) (aws.Credentials, error)
	// LookupHost resolves a tcp:// validator host; default net.DefaultResolver.
	LookupHost func(ctx context.Context, host string) ([]string, error)
	Timeout    time.Duration // bounds each check that waits; DefaultTimeout
}

func (o Options) withDefaults() Options {
	if o.ProcDir == "" {
		o.ProcDir = DefaultProcDir
	}
	if o.ProxyConfig == "" {
		o.ProxyConfig = DefaultProxyConfig
	}
	if o.NitroCLI == "" {
		o.NitroCLI = "nitro-cli"
	}
	if o.VsockProxy == "" {
		o.VsockProxy = "vsock-proxy"
	}
	if o.Credentials == nil {
		o.Credentials = defaultCredentials
	}
	if o.LookupHost == nil {
		o.LookupHost = defaultLookupHost
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	return o
}

func defaultCredentials(ctx context.Context, cfg *config.Config) (aws.Credentials, error) {
	p, err := host.CredentialsFor(ctx, cfg)
	if err != nil {
		return aws.Credentials{}, err
	}
	return p.Retrieve(ctx)
}

// runner carries what earlier checks found to later ones.
type runner struct {
	o        Options
	cfg      *config.Config
	keys     map[string]*sealedkey.Key // by check name (and chain), when parsed
	chain    string                    // the chain a per-chain check runs for, with several
	nitroCLI string                    // resolved path, when found
}

// Run runs every check and returns the results in order. It never stops
// early: a check that cannot run because another failed reports Skip.
func Run(ctx context.Context, o Options) []Result {
	r := &runner{o: o.withDefaults(), keys: map[string]*sealedkey.Key{}}
	cfgResult := r.checkConfig()
	out := []Result{cfgResult}
	for _, c := range allChecks() {
		if r.cfg == nil {
			out = append(out, skipped(c.name, "needs a valid "+CheckConfig))
			continue
		}
		out = append(out, r.run(ctx, c)...)
	}
	return out
}

// run runs c once, or once per chain when it checks a chain's settings:
// r.cfg is then the chain's configuration, and with several chains each
// result names its chain.
func (r *runner) run(ctx context.Context, c check) []Result {
	if !c.perChain {
		if !c.applies(r) {
			return nil
		}
		return []Result{c.run(r, ctx)}
	}
	top := r.cfg
	defer func() { r.cfg, r.chain = top, "" }()
	var out []Result
	for _, ch := range top.Chains() {
		r.cfg = ch
		if len(top.Validators) > 0 {
			r.chain = ch.ChainID
		}
		if !c.applies(r) {
			continue
		}
		res := c.run(r, ctx)
		if r.chain != "" {
			res.Detail = "chain " + r.chain + ": " + res.Detail
		}
		out = append(out, res)
	}
	return out
}

type check struct {
	name     string
	applies  func(*runner) bool
	run      func(*runner, context.Context) Result
	perChain bool // checks one chain's settings: run for each chain
}

func always(*runner) bool { return true }

func allChecks() []check {
	return []check{
		{CheckConsensusKey, always, (*runner).checkConsensusKey, true},
		{CheckIdentityKey, (*runner).needsIdentity, (*runner).checkIdentityKey, false},
		{CheckStateFile, always, (*runner).checkStateFile, true},
		{CheckNitroCLI, always, (*runner).checkNitroCLI, false},
		{CheckEnclave, always, (*runner).checkEnclave, false},
		{CheckVsockProxy, always, (*runner).checkVsockProxy, false},
		{CheckAllowlist, always, (*runner).checkAllowlist, false},
		{CheckCredentials, always, (*runner).checkCredentials, false},
		{CheckRegion, always, (*runner).checkRegion, false},
		{CheckKMSKey, always, (*runner).checkKMSKey, false},
		{CheckValidator, always, (*runner).checkValidator, true},
		{CheckHA, func(r *runner) bool { return r.cfg.HA != nil && !r.cfg.HA.Anchored() }, (*runner).checkHA, true},
		{CheckAnchor, always, (*runner).checkAnchor, true},
	}
}

func (r *runner) checkConfig() Result {
	cfg, err := config.Load(r.o.ConfigPath)
	if err != nil {
		return fail(CheckConfig, err.Error(), "see the tmkms.toml reference in docs/operations.md; 'tmkms-nitro-helper init' writes a default one")
	}
	if r.o.CID != 0 {
		cfg.EnclaveConfigCID = r.o.CID
		if err := cfg.Validate(); err != nil {
			return fail(CheckConfig, "--cid: "+err.Error(), "pass the CID nitro-cli describe-enclaves shows")
		}
	}
	r.cfg = cfg
	var chains []string
	for _, ch := range cfg.Chains() {
		chains = append(chains, fmt.Sprintf("chain_id %s (validator %s)", ch.ChainID, strings.Join(ch.Addresses, ", ")))
	}
	return pass(CheckConfig, fmt.Sprintf("%s: aws_region %s, enclave CID %d, %s",
		r.o.ConfigPath, cfg.AWSRegion, cfg.EnclaveConfigCID, strings.Join(chains, "; ")))
}

func (r *runner) needsIdentity() bool { return r.cfg.NeedsIdentity() }

func pass(name, detail string) Result { return Result{Name: name, Status: Pass, Detail: detail} }
func warn(name, detail, hint string) Result {
	return Result{Name: name, Status: Warn, Detail: detail, Hint: hint}
}
func fail(name, detail, hint string) Result {
	return Result{Name: name, Status: Fail, Detail: detail, Hint: hint}
}
func skipped(name, why string) Result { return Result{Name: name, Status: Skip, Detail: why} }

// Count returns how many results have status s.
func Count(rs []Result, s Status) int {
	n := 0
	for _, r := range rs {
		if r.Status == s {
			n++
		}
	}
	return n
}

// Write prints one line per result, a hint line under each WARN or FAIL,
// and a summary line.
func Write(w io.Writer, rs []Result) error {
	var b strings.Builder
	for _, r := range rs {
		// One line per check, even for a config with several problems.
		detail := strings.ReplaceAll(r.Detail, "\n", "; ")
		fmt.Fprintf(&b, "%-4s  %-16s %s\n", r.Status, r.Name, detail)
		if r.Hint != "" && (r.Status == Warn || r.Status == Fail) {
			for _, line := range strings.Split(r.Hint, "\n") {
				fmt.Fprintf(&b, "      %-16s hint: %s\n", "", line)
			}
		}
	}
	fmt.Fprintf(&b, "%d checks: %d passed, %d warned, %d failed, %d skipped\n",
		len(rs), Count(rs, Pass), Count(rs, Warn), Count(rs, Fail), Count(rs, Skip))
	_, err := io.WriteString(w, b.String())
	return err
}
