package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/tmkms-nitro/tmkms-nitro/internal/pcr"
)

func runPCR(_ context.Context, env *Env, args []string) error {
	fs := newFlags(env, "pcr", "[--instance-id ID] [--role-arn ARN] [--eif FILE]",
		"Prints the PCR values a KMS key policy pins: PCR4 of an EC2 instance id, PCR3 of an IAM role ARN,\n"+
			"and PCR0, PCR1, PCR2 of an enclave image file (as `nitro-cli describe-eif` prints them).")
	instance := fs.String("instance-id", "", "EC2 instance id (PCR4), e.g. from http://169.254.169.254/latest/meta-data/instance-id")
	role := fs.String("role-arn", "", "IAM role ARN of the parent instance (PCR3)")
	eif := fs.String("eif", "", "enclave image file (PCR0, PCR1, PCR2)")
	if err := Parse(fs, args, 0); err != nil {
		return err
	}
	if *instance == "" && *role == "" && *eif == "" {
		return WithHint(errors.New("nothing to measure"), "pass --instance-id, --role-arn or --eif")
	}
	if *eif != "" {
		img, err := pcr.ReadEIFFile(*eif)
		if err != nil {
			return err
		}
		out, err := pcr.MarshalReport(img.Measurements)
		if err != nil {
			return err
		}
		env.Stdout.Write(out)
	}
	if *role != "" {
		fmt.Fprintf(env.Stdout, "PCR3: %s\n", pcr.Hex(pcr.PCR3(*role)))
	}
	if *instance != "" {
		fmt.Fprintf(env.Stdout, "PCR4: %s\n", pcr.Hex(pcr.PCR4(*instance)))
	}
	return nil
}
