package preflight

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

func (r *runner) checkCredentials(ctx context.Context) Result {
	if r.cfg.Credentials != nil {
		return r.staticCredentials()
	}
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	c, err := r.o.Credentials(ctx, r.cfg)
	if err != nil {
		return fail(CheckCredentials, "no AWS credentials for the instance role: "+err.Error(),
			"attach an IAM role to the instance (step 4.1 of tmkms-light's Nitro guide) and check that IMDSv2 answers on it\n"+
				"static [credentials] in tmkms.toml work too, but the instance role is preferred")
	}
	detail := "credentials from " + c.Source
	if c.CanExpire {
		detail += fmt.Sprintf(", valid until %s (start refreshes them)", c.Expires.UTC().Format(time.RFC3339))
	}
	return pass(CheckCredentials, detail)
}

// staticCredentials checks that a tmkms.toml holding a secret key is
// readable by its owner only.
func (r *runner) staticCredentials() Result {
	fi, err := os.Stat(r.o.ConfigPath)
	if err != nil {
		return fail(CheckCredentials, err.Error(), "")
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fail(CheckCredentials, fmt.Sprintf("%s holds an AWS secret key ([credentials]) and is accessible to group or others (mode %04o)", r.o.ConfigPath, perm),
			"chmod 600 "+r.o.ConfigPath+", or remove [credentials] and use the instance role")
	}
	return pass(CheckCredentials, "static [credentials] in tmkms.toml (the instance role is preferred: its credentials rotate)")
}

// parsedKeys returns the sealed keys earlier checks parsed, by check name.
func (r *runner) parsedKeys() []string {
	names := make([]string, 0, len(r.keys))
	for n := range r.keys {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (r *runner) checkRegion(context.Context) Result {
	names := r.parsedKeys()
	if len(names) == 0 {
		return skipped(CheckRegion, "needs "+CheckConsensusKey)
	}
	region := r.cfg.AWSRegion
	hint := fmt.Sprintf("KMS keys are regional: set aws_region to the key's region, or seal the key again in %s with 'init' or 'import'", region)
	if got := arnRegion(r.cfg.KMSKeyID); got != "" && got != region {
		return fail(CheckRegion, fmt.Sprintf("kms_key_id %s is in %s, but aws_region is %s", r.cfg.KMSKeyID, got, region), hint)
	}
	checked := r.cfg.KMSKeyID != "" && arnRegion(r.cfg.KMSKeyID) != ""
	for _, n := range names {
		k, what := r.keys[n], label(n)
		if k.Legacy() {
			continue
		}
		if k.Region != region {
			return fail(CheckRegion, fmt.Sprintf("the %s was sealed with KMS in %s, but aws_region is %s", what, k.Region, region), hint)
		}
		if got := arnRegion(k.KMSKeyID); got != "" && got != region {
			return fail(CheckRegion, fmt.Sprintf("the %s names KMS key %s in %s, but aws_region is %s", what, k.KMSKeyID, got, region), hint)
		}
		checked = true
	}
	if !checked {
		return warn(CheckRegion, "a tmkms-light sealed key records no region, and kms_key_id is not an ARN: cannot compare with aws_region "+region,
			"set kms_key_id to the key's full ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)")
	}
	return pass(CheckRegion, "the sealed keys and KMS key are in "+region)
}

func (r *runner) checkKMSKey(context.Context) Result {
	names := r.parsedKeys()
	if len(names) == 0 {
		return skipped(CheckKMSKey, "needs "+CheckConsensusKey)
	}
	pinned := r.cfg.KMSKeyID
	for _, n := range names {
		k, what := r.keys[n], label(n)
		switch {
		case k.Legacy() && pinned == "":
			return fail(CheckKMSKey, fmt.Sprintf("the %s is a tmkms-light sealed key, which does not record its KMS key", what),
				"set kms_key_id in tmkms.toml to the key that sealed it; the enclave refuses to unseal it otherwise")
		case !k.Legacy() && pinned != "" && !sameKey(pinned, k.KMSKeyID):
			return fail(CheckKMSKey, fmt.Sprintf("the %s was sealed with KMS key %s, but kms_key_id pins %s", what, k.KMSKeyID, pinned),
				"the enclave refuses it: fix kms_key_id, or seal the key again with the pinned KMS key")
		}
	}
	if pinned != "" {
		return pass(CheckKMSKey, "kms_key_id pins "+pinned+", and the sealed keys agree")
	}
	return pass(CheckKMSKey, "the sealed keys name their KMS key (set kms_key_id to pin it)")
}

// label names a key check's key in prose: "consensus key".
func label(check string) string { return strings.ReplaceAll(check, "-", " ") }

// sameKey must agree with the enclave's rule: a configured key reference
// (key id or ARN) matches the ARN recorded at sealing time.
func sameKey(ref, arn string) bool {
	return ref == arn || strings.HasSuffix(arn, ":key/"+ref)
}

// arnRegion returns the region of a KMS key ARN, "" for anything else.
func arnRegion(s string) string {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "kms" {
		return ""
	}
	return parts[3]
}
