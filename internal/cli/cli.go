// Package cli is tmkms-nitro-helper's command line: one file per
// subcommand, errors printed as "tmkms-nitro-helper: error: ..." with
// "hint:" lines, and no global state, so that every command runs the same
// from main and from tests. [Program] is also the frame of the development
// command, tmkms-nitro-dev, so that both read and fail alike.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
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

// Command is one subcommand: its line in the usage, and what it runs.
type Command struct {
	Summary string
	Run     func(ctx context.Context, env *Env, args []string) error
}

func commands() map[string]Command {
	return map[string]Command{
		"check":              {"check this host: config, sealed keys, state file, enclave, vsock-proxy, credentials, region, validator", runCheck},
		"enclave":            {"run, stop or describe the enclave (nitro-cli wrappers)", runEnclave},
		"launch-all":         {"start the enclave and vsock-proxy, then run start; terminate both on exit", runLaunchAll},
		"init":               {"generate the validator key in the enclave and seal it with KMS (-a REGION -k KEY)", runInit},
		"import":             {"seal an existing priv_validator_key.json in the enclave, and migrate its state", runImport},
		"start":              {"run the host side: configure the enclave, persist its state, bridge the validator", runStart},
		"local":              {"local mode: init and start the whole system on this machine, without Nitro or AWS", runLocal},
		"pcr":                {"print PCR values: PCR4 of an instance, PCR3 of a role, PCR0-2 of an EIF", runPCR},
		"policy":             {"print the KMS key policy that releases the key only to the enclave", runPolicy},
		"verify-attestation": {"verify a Nitro attestation document and print what it attests", runVerifyAttestation},
	}
}

const prog = "tmkms-nitro-helper"

// Main runs tmkms-nitro-helper's command line and returns the exit status.
func Main(ctx context.Context, args []string, env *Env) int {
	p := Program{
		Name:     prog,
		About:    "runs the host side of a CometBFT validator signer whose key lives in an AWS Nitro Enclave",
		Commands: commands(),
		Moved:    map[string]string{},
	}
	for _, dev := range []string{"bench", "demo", "kms-emulator"} {
		p.Moved[dev] = dev + " is in tmkms-nitro-dev, the development command: go run ./cmd/tmkms-nitro-dev " + dev
	}
	return p.Main(ctx, args, env)
}

// Program is a command line made of subcommands.
type Program struct {
	Name, About string
	Commands    map[string]Command
	// Moved holds the hint printed for a command this program does not
	// have but an operator may expect it to.
	Moved map[string]string
}

// Main runs the command line and returns the exit status.
func (p Program) Main(ctx context.Context, args []string, env *Env) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		p.usage(env.Stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := p.Commands[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "%s: error: unknown command %q\n", p.Name, args[0])
		hint, moved := p.Moved[args[0]]
		if !moved {
			hint = fmt.Sprintf("run %q for the list of commands", p.Name+" --help")
		}
		fmt.Fprintf(env.Stderr, "%s: hint: %s\n", p.Name, hint)
		return 2
	}
	err := cmd.Run(ctx, env, args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrUsage):
		return 2
	}
	fmt.Fprintf(env.Stderr, "%s: error: %v\n", p.Name, err)
	var h *hintError
	if errors.As(err, &h) {
		for _, line := range strings.Split(h.hint, "\n") {
			fmt.Fprintf(env.Stderr, "%s: hint: %s\n", p.Name, line)
		}
	}
	return 1
}

func (p Program) usage(w io.Writer) {
	fmt.Fprintf(w, "%s %s.\n\nUsage:\n  %s <command> [flags]\n\nCommands:\n", p.Name, p.About, p.Name)
	for _, n := range slices.Sorted(maps.Keys(p.Commands)) {
		fmt.Fprintf(w, "  %-20s %s\n", n, p.Commands[n].Summary)
	}
	fmt.Fprintf(w, "\nRun '%s <command> -h' for a command's flags.\n", p.Name)
}

// subcommands runs the subcommand args[0] names, or prints usage.
func subcommands(ctx context.Context, env *Env, args []string, usage string, subs map[string]func(context.Context, *Env, []string) error) error {
	if len(args) > 0 {
		if run, ok := subs[args[0]]; ok {
			return run(ctx, env, args[1:])
		}
	}
	fmt.Fprintf(env.Stderr, "Usage: %s %s\n", prog, usage)
	return ErrUsage
}

// ErrUsage marks a command line that could not be parsed; the flag package
// has already printed why.
var ErrUsage = errors.New("usage")

// hintError carries advice printed after the error.
type hintError struct {
	err  error
	hint string
}

func (h *hintError) Error() string { return h.err.Error() }
func (h *hintError) Unwrap() error { return h.err }

// WithHint returns err with advice that Main prints after it.
func WithHint(err error, hint string) error { return &hintError{err, hint} }

func newFlags(env *Env, name, args, desc string) *flag.FlagSet {
	return NewFlags(env, prog, name, args, desc)
}

// NewFlags returns a flag set for program's command name that prints its
// usage to env.Stderr.
func NewFlags(env *Env, program, name, args, desc string) *flag.FlagSet {
	fs := flag.NewFlagSet(program+" "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "Usage: %s %s\n\n%s\n\nFlags:\n", fs.Name(), args, desc)
		fs.PrintDefaults()
	}
	return fs
}

// Parse parses flags, mapping failures to ErrUsage; no positional
// arguments are allowed beyond max.
func Parse(fs *flag.FlagSet, args []string, max int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return ErrUsage
	}
	if fs.NArg() > max {
		program, _, _ := strings.Cut(fs.Name(), " ")
		fmt.Fprintf(fs.Output(), "%s: error: unexpected argument %q\n", program, fs.Arg(max))
		fs.Usage()
		return ErrUsage
	}
	return nil
}
