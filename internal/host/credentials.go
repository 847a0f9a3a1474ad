package host

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/tmkms-nitro/tmkms-nitro/internal/config"
)

// CredentialsFor returns the credentials pushed to the enclave: the static
// [credentials] of tmkms.toml when present, otherwise the AWS SDK's default
// chain (on EC2, the instance role through IMDSv2), cached and refreshed by
// the SDK before they expire.
func CredentialsFor(ctx context.Context, cfg *config.Config) (aws.CredentialsProvider, error) {
	if c := cfg.Credentials; c != nil {
		static := aws.Credentials{AccessKeyID: c.KeyID, SecretAccessKey: c.SecretKey, SessionToken: c.SessionToken, Source: "tmkms.toml"}
		return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return static, nil }), nil
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(cfg.AWSRegion))
	if err != nil {
		return nil, fmt.Errorf("failed to set up AWS credentials (instance role): %w", err)
	}
	return ac.Credentials, nil
}
