// Package devcli is tmkms-nitro-dev's command line: the tools for
// developing and evaluating the signer on one machine (a live demo, the
// benchmark, a local KMS on its own). They embed an etcd server and a
// CometBFT node, which is why they live outside the production helper.
package devcli

import (
	"context"
	"errors"
	"flag"

	"github.com/tmkms-nitro/tmkms-nitro/internal/cli"
	"github.com/tmkms-nitro/tmkms-nitro/internal/localmode"
)

const prog = "tmkms-nitro-dev"

// Env is the helper's: a development command touches its process the
// same way.
type Env = cli.Env

// Main runs tmkms-nitro-dev's command line and returns the exit status.
func Main(ctx context.Context, args []string, env *Env) int {
	p := cli.Program{
		Name:  prog,
		About: "runs tmkms-nitro's development tools on this machine, without Nitro or AWS",
		Commands: map[string]cli.Command{
			"bench":        {Summary: "measure signing latency against CometBFT's FilePV: the signer core and the whole local stack", Run: runBench},
			"demo":         {Summary: "run the whole system locally: a validator whose key lives in the local enclave, signing live (no AWS needed)", Run: runDemo},
			"kms-emulator": {Summary: "run a local AWS-compatible KMS (JSON 1.1 over TLS, SigV4, key policies, Recipient)", Run: runKMSEmulator},
		},
	}
	return p.Main(ctx, args, env)
}

func newFlags(env *Env, name, args, desc string) *flag.FlagSet {
	return cli.NewFlags(env, prog, name, args, desc)
}

// hintFor says where the enclave program is looked for: outside the
// source tree it cannot be built on the fly.
func hintFor(err error) error {
	if errors.Is(err, localmode.ErrNoEnclaveBinary) {
		return cli.WithHint(err, "run this from the source tree, which builds it, or build it next to this program:\n"+
			"go build -o \"$(dirname \"$(command -v tmkms-nitro-dev)\")\" ./cmd/tmkms-nitro-enclave\nor pass --enclave PATH")
	}
	return err
}
