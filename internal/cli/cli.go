// Package cli is tmkms-nitro-helper's command line: one file per
// subcommand, errors printed as "tmkms-nitro-helper: error: ..." with
// "hint:" lines, and no global state, so that every command runs the same
// from main and from tests.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Env is what a command may touch of its process.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

func (e *Env) getenv(key string) string {
	if e.Getenv == nil {
		return ""
	}
	return e.Getenv(key)
}

type command struct {
	summary string
	run     func(ctx context.Context, env *Env, args []string) error
}

func commands() map[string]command {
	return map[string]command{
		"bench":              {"measure signing latency against CometBFT's FilePV: the signer core and the whole local stack", runBench},
		"check":              {"check this host: config, sealed keys, state file, enclave, vsock-proxy, credentials, region, validator", runCheck},
		"demo":               {"run the whole system locally: a validator whose key lives in the local enclave, signing live (no AWS needed)", runDemo},
		"enclave":            {"run, stop or describe the enclave (nitro-cli wrappers)", runEnclave},
		"launch-all":         {"start the enclave and vsock-proxy, then run start; terminate both on exit", runLaunchAll},
		"init":               {"generate the validator key in the enclave and seal it with KMS (-a REGION -k KEY)", runInit},
		"import":             {"seal an existing priv_validator_key.json in the enclave, and migrate its state", runImport},
		"start":              {"run the host side: configure the enclave, persist its state, bridge the validator", runStart},
		"kms-emulator":       {"run a local AWS-compatible KMS (JSON 1.1 over TLS, SigV4, key policies, Recipient)", runKMSEmulator},
		"local":              {"local mode: init and start the whole system on this machine, without Nitro or AWS", runLocal},
		"pcr":                {"print PCR values: PCR4 of an instance, PCR3 of a role, PCR0-2 of an EIF", runPCR},
		"policy":             {"print the KMS key policy that releases the key only to the enclave", runPolicy},
		"verify-attestation": {"verify a Nitro attestation document and print what it attests", runVerifyAttestation},
	}
}

const prog = "tmkms-nitro-helper"

// Main runs the command line and returns the exit status.
func Main(ctx context.Context, args []string, env *Env) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.Stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "%s: error: unknown command %q\n", prog, args[0])
		fmt.Fprintf(env.Stderr, "%s: hint: run %q for the list of commands\n", prog, prog+" --help")
		return 2
	}
	err := cmd.run(ctx, env, args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(env.Stderr, "%s: error: %v\n", prog, err)
	var h *hintError
	if errors.As(err, &h) {
		for _, line := range strings.Split(h.hint, "\n") {
			fmt.Fprintf(env.Stderr, "%s: hint: %s\n", prog, line)
		}
	}
	return 1
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "%s runs the host side of a CometBFT validator signer whose key lives in an AWS Nitro Enclave.\n\nUsage:\n  %s <command> [flags]\n\nCommands:\n", prog, prog)
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-20s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintf(w, "\nRun '%s <command> -h' for a command's flags.\n", prog)
}

// subcommands runs the subcommand args[0] names, or prints usage.
func subcommands(ctx context.Context, env *Env, args []string, usage string, subs map[string]func(context.Context, *Env, []string) error) error {
	if len(args) > 0 {
		if run, ok := subs[args[0]]; ok {
			return run(ctx, env, args[1:])
		}
	}
	fmt.Fprintf(env.Stderr, "Usage: %s %s\n", prog, usage)
	return errUsage
}

// errUsage marks a command line that could not be parsed; the flag package
// has already printed why.
var errUsage = errors.New("usage")

// hintError carries advice printed after the error.
type hintError struct {
	err  error
	hint string
}

func (h *hintError) Error() string { return h.err.Error() }
func (h *hintError) Unwrap() error { return h.err }

func withHint(err error, hint string) error { return &hintError{err, hint} }

// newFlags returns a flag set that prints its usage to env.Stderr.
func newFlags(env *Env, name, args, desc string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "Usage: %s %s %s\n\n%s\n\nFlags:\n", prog, name, args, desc)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags, mapping failures to errUsage; no positional
// arguments are allowed beyond max.
func parse(fs *flag.FlagSet, args []string, max int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > max {
		fmt.Fprintf(fs.Output(), "%s: error: unexpected argument %q\n", prog, fs.Arg(max))
		fs.Usage()
		return errUsage
	}
	return nil
}
