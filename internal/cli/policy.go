package cli

import (
	"context"

	"github.com/tmkms-nitro/tmkms-nitro/internal/kmspolicy"
)

func runPolicy(_ context.Context, env *Env, args []string) error {
	fs := newFlags(env, "policy", "--account ID --role NAME --pcr0 HEX [--pcr0 HEX] --pcr4 HEX [--pcr4 HEX...] [flags]",
		"Prints the KMS key policy that lets only the enclave create and decrypt the validator key (tmkms-light's\n"+
			"Nitro guide, step 4.2): Decrypt and GenerateDataKey for the instance role with an attestation whose PCRs match;\n"+
			"an explicit Deny for the role of Encrypt, ReEncrypt*, the other data key operations, CreateGrant and\n"+
			"PutKeyPolicy, so a compromised host cannot plant a key it chose; and an explicit Deny of Decrypt and\n"+
			"GenerateDataKey without that attestation for everyone. Import an existing key with admin credentials.")
	var p kmspolicy.Params
	fs.StringVar(&p.AccountID, "account", "", "AWS account id that owns the key and the role")
	fs.StringVar(&p.RoleName, "role", "", "name of the EC2 instance role")
	fs.StringVar(&p.RoleARN, "role-arn", "", "full ARN of the EC2 instance role (instead of --role)")
	fs.Func("pcr0", "PCR0 of the enclave image (tmkms-nitro-helper pcr --eif, or nitro-cli build-enclave); give the old and the new one while upgrading",
		func(v string) error { p.PCR0 = append(p.PCR0, v); return nil })
	fs.Func("pcr4", "PCR4 of a parent instance (tmkms-nitro-helper pcr --instance-id); repeat for each instance of a high-availability set",
		func(v string) error { p.PCR4 = append(p.PCR4, v); return nil })
	fs.StringVar(&p.PCR3, "pcr3", "", "optional PCR3 (parent instance role)")
	fs.StringVar(&p.PCR8, "pcr8", "", "optional PCR8 (enclave image signing certificate)")
	fs.BoolVar(&p.Debug, "debug", false, "pin the all-zero PCR0 of an enclave run with --debug-mode (never for production)")
	fs.BoolVar(&p.NoDeny, "no-deny", false, "omit every explicit Deny, as tmkms-light's Nitro guide does (weaker: IAM policies may then let the role plant a key or decrypt unattested)")
	fs.StringVar(&p.Partition, "partition", "", "AWS partition (default aws)")
	if err := Parse(fs, args, 0); err != nil {
		return err
	}
	pol, err := kmspolicy.Seed(p)
	if err != nil {
		return WithHint(err, "see 'tmkms-nitro-helper policy -h'")
	}
	out, err := kmspolicy.Marshal(pol)
	if err != nil {
		return err
	}
	_, err = env.Stdout.Write(append(out, '\n'))
	return err
}
