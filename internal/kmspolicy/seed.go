package kmspolicy

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Condition keys KMS sets from the attestation document in a request's
// Recipient parameter (KMS Developer Guide, "Condition keys for Nitro
// Enclaves"). Values are lower-case hex; keys are absent from requests
// without an attestation document.
const (
	KeyImageSha384 = "kms:RecipientAttestation:ImageSha384" // equals PCR0
	keyPCRPrefix   = "kms:RecipientAttestation:PCR"
)

// KeyPCR returns the condition key for PCR n, e.g. KeyPCR(0) is
// "kms:RecipientAttestation:PCR0".
func KeyPCR(n int) string { return keyPCRPrefix + strconv.Itoa(n) }

// DebugPCR is the value of the boot-measured PCRs of an enclave started with
// --debug-mode. A policy pinning it admits only debug enclaves, whose memory
// the parent can read: use it for testing, never for a real key.
const DebugPCR = "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"

// RecipientContext returns the request context KMS derives from an
// attestation document with the given PCRs (index to raw bytes), for use in
// Request.Context. PCR0 also yields ImageSha384.
func RecipientContext(pcrs map[int][]byte) map[string]string {
	ctx := make(map[string]string, len(pcrs)+1)
	for n, v := range pcrs {
		ctx[KeyPCR(n)] = hex.EncodeToString(v)
	}
	if v, ok := pcrs[0]; ok {
		ctx[KeyImageSha384] = hex.EncodeToString(v)
	}
	return ctx
}

// Seed statement IDs. SidAdmin is the AWS console's default key policy's.
const (
	SidAdmin    = "Enable IAM User Permissions"
	SidEnclave  = "Enable decrypt and data keys from nitro enclave only"
	SidDenyRole = "Deny the instance role planting or re-wrapping a key"
)

// enclaveActions are what the instance role may do, and only with an
// attestation document whose PCRs match: GenerateDataKey to create a key
// (with the attestation as Recipient, KMS returns the data key encrypted to
// the enclave's attested RSA key, never in plaintext) and Decrypt to unseal
// one.
var enclaveActions = []string{"kms:Decrypt", "kms:GenerateDataKey"}

// roleDeniedActions are refused to the instance role outright, none being
// something the enclave needs. Encrypt and ReEncryptTo would put under this
// key a plaintext the host chose, or a ciphertext from a key it controls;
// ReEncryptFrom would move the sealed key to a key without this policy; the
// data key variants without plaintext or for key pairs make key material
// that no attested enclave asked for (a pair's private key comes back in
// plaintext without a Recipient); CreateGrant and PutKeyPolicy would change
// who may do any of this.
var roleDeniedActions = []string{
	"kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKeyWithoutPlaintext",
	"kms:GenerateDataKeyPair", "kms:GenerateDataKeyPairWithoutPlaintext",
	"kms:CreateGrant", "kms:PutKeyPolicy",
}

// attestedActions are denied to every principal unless the request's
// attestation matches each pin: the actions that return key material or
// re-wrap it.
var attestedActions = []string{"kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyPair", "kms:ReEncryptFrom"}

// Params are the operator's inputs to Seed.
type Params struct {
	Partition string // "aws" if empty ("aws-cn", "aws-us-gov" elsewhere)
	AccountID string // the 12-digit account that owns the key and the role
	RoleName  string // the EC2 instance role, used when RoleARN is empty
	RoleARN   string // the EC2 instance role's full ARN (wins over RoleName)

	// PCR0 holds the PCR0 (nitro-cli build-enclave's) of each enclave
	// image allowed: one, or the old and the new one during an upgrade
	// (docs/operations.md). Same rules as PCR4.
	PCR0  []string
	Debug bool // pin PCR0 to DebugPCR instead (tmkms-light's Nitro guide: debug mode)
	// PCR4 holds the PCR4 (see pcr.PCR4) of each EC2 instance that runs a
	// signer: one for a single signer, several for a high-availability set
	// sharing the sealed key. At least one is required; each is 96 hex
	// digits, normalised to lower case, and duplicates after normalisation
	// are an error. Several values under one condition key are ORed in the
	// Allow and NORed in the Deny, so any listed instance may decrypt.
	PCR4 []string

	// Optional further pins, added to the enclave's conditions when set.
	PCR3, PCR8, ImageSha384 string

	// Admins receive kms:* so the key stays manageable, and so that an
	// operator can import an existing key (kms:Encrypt with the admin's
	// own credentials, never the role's). The account root if empty,
	// which delegates to the account's IAM policies.
	Admins   []string
	PolicyID string // "Id"; "key-consolepolicy-3" if empty, as in the guide
	// NoDeny omits every explicit Deny, the per-PCR ones and the instance
	// role's, as tmkms-light's Nitro guide's policy has none. Without them the Admins
	// statement's kms:* reaches any principal the account's IAM policies
	// allow, the instance role included: it can then Decrypt without an
	// attestation document and get the key in plaintext, or Encrypt a seed
	// of its choice and plant it. Only for comparing with tmkms-light's Nitro guide.
	// (The guide also gives the role kms:Encrypt; Seed never does.)
	NoDeny bool
}

// Seed returns the key policy for p, derived from tmkms-light's Nitro guide's (step
// 4.2) and hardened against a compromised parent instance, which holds the
// instance role's credentials:
//
//   - an admin statement (kms:* for p.Admins);
//   - kms:Decrypt and kms:GenerateDataKey for the instance role, only with
//     an attestation document whose PCRs match (SidEnclave);
//   - unless p.NoDeny, an explicit Deny for the role of every action that
//     could plant, re-wrap or hand out a key, or change these rules
//     (SidDenyRole), and one explicit Deny per pinned PCR (DenySid).
//
// The role gets no kms:Encrypt, unlike in tmkms-light's Nitro guide: with it a host
// could encrypt a seed it chose and write a sealed key file the enclave
// would unseal and sign with, a key the attacker knows ("key planting").
// Instead a new key's plaintext comes from KMS, through GenerateDataKey
// with the enclave's attestation as Recipient, so only the enclave ever
// sees it; an existing key is imported by an operator with admin
// credentials. The explicit Deny for the role matters because the admin
// statement, when it names the account root, also reaches the role through
// the account's IAM policies, and a broad one (kms:* on "*") attached to
// the role must not reopen any of this.
//
// A pin with one value is written as a JSON string, one with several (PCR4
// of a high-availability set) as an array.
//
// The per-PCR Deny uses StringNotEqualsIgnoreCase rather than a Null check
// because AWS documents that a negated operator holds when the key is
// absent (IAM User Guide, condition operators), so one statement refuses
// both a request without attestation and one with the wrong measurement,
// from any principal, whatever IAM policies grant. One statement per PCR,
// because keys under one operator are ANDed: a single Deny listing PCR0 and
// PCR4 would only fire when both mismatch. It covers kms:GenerateDataKey
// (and GenerateDataKeyPair), which would otherwise hand an unattested
// caller a data key in plaintext, and kms:ReEncryptFrom, which takes no
// attestation and would otherwise re-wrap the sealed key under a key
// without this policy.
func Seed(p Params) (Policy, error) {
	role, admins, err := p.principals()
	if err != nil {
		return Policy{}, err
	}
	pins, err := p.pins()
	if err != nil {
		return Policy{}, err
	}
	id := p.PolicyID
	if id == "" {
		id = "key-consolepolicy-3"
	}
	cond := map[string]Strings{}
	for _, pin := range pins {
		cond[pin.key] = pin.strings()
	}
	stmts := []Statement{
		{Sid: SidAdmin, Effect: Allow, Principal: Principal{AWS: admins}, Action: One("kms:*"), Resource: One("*")},
		{Sid: SidEnclave, Effect: Allow, Principal: Principal{AWS: One(role)}, Action: List(slices.Clone(enclaveActions)...),
			Resource: One("*"), Condition: Condition{StringEqualsIgnoreCase: cond}},
	}
	if !p.NoDeny {
		stmts = append(stmts, Statement{Sid: SidDenyRole, Effect: Deny, Principal: Principal{AWS: One(role)},
			Action: List(slices.Clone(roleDeniedActions)...), Resource: One("*")})
		for _, pin := range pins {
			stmts = append(stmts, denyUnless(pin))
		}
	}
	return Policy{Version: Version, ID: id, Statement: stmts}, nil
}

// DenySid is the Sid of the explicit Deny Seed writes for a condition key,
// e.g. "Deny decrypt and data keys without attested PCR0".
func DenySid(key string) string {
	return "Deny decrypt and data keys without attested " + strings.TrimPrefix(key, "kms:RecipientAttestation:")
}

func denyUnless(pin pin) Statement {
	return Statement{
		Sid: DenySid(pin.key), Effect: Deny, Principal: Principal{Wildcard: true},
		Action: List(slices.Clone(attestedActions)...), Resource: One("*"),
		Condition: Condition{StringNotEqualsIgnoreCase: {pin.key: pin.strings()}},
	}
}

// pin is a condition key and the values that satisfy it (any of them).
type pin struct {
	key    string
	values []string
}

// strings writes a single value as a JSON string, as Seed always has, and
// several as an array.
func (p pin) strings() Strings {
	if len(p.values) == 1 {
		return One(p.values[0])
	}
	return List(p.values...)
}

// pins returns the measurements to require, in a fixed order.
func (p Params) pins() ([]pin, error) {
	pcr0 := p.PCR0
	if p.Debug {
		if len(pcr0) > 1 || len(pcr0) == 1 && pcr0[0] != DebugPCR {
			return nil, errors.New("kmspolicy: both Debug and a non-zero PCR0 given")
		}
		pcr0 = []string{DebugPCR}
	}
	candidates := []struct {
		key      string
		values   []string
		required bool
	}{
		{KeyPCR(0), pcr0, true}, {KeyPCR(3), []string{p.PCR3}, false}, {KeyPCR(4), p.PCR4, true},
		{KeyPCR(8), []string{p.PCR8}, false}, {KeyImageSha384, []string{p.ImageSha384}, false},
	}
	var out []pin
	for _, c := range candidates {
		if !c.required && len(c.values) == 1 && c.values[0] == "" {
			continue
		}
		if len(c.values) == 0 {
			return nil, fmt.Errorf("kmspolicy: %s: at least one value required", c.key)
		}
		vs := make([]string, 0, len(c.values))
		for _, raw := range c.values {
			v, err := pcrHex(raw)
			if err != nil {
				return nil, fmt.Errorf("kmspolicy: %s: %w", c.key, err)
			}
			if slices.Contains(vs, v) {
				return nil, fmt.Errorf("kmspolicy: %s: value %s given twice", c.key, v)
			}
			vs = append(vs, v)
		}
		out = append(out, pin{c.key, vs})
	}
	return out, nil
}

// pcrHex normalises a PCR to the lower-case hex KMS documents.
func pcrHex(s string) (string, error) {
	if len(s) != 96 {
		return "", fmt.Errorf("want 96 hex digits, got %d characters", len(s))
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", fmt.Errorf("not hex: %w", err)
	}
	return strings.ToLower(s), nil
}

func (p Params) principals() (role string, admins Strings, err error) {
	partition := p.Partition
	if partition == "" {
		partition = "aws"
	}
	if !isAccountID(p.AccountID) {
		return "", Strings{}, fmt.Errorf("kmspolicy: account ID %q is not 12 digits", p.AccountID)
	}
	role = p.RoleARN
	if role == "" {
		if p.RoleName == "" || strings.ContainsAny(p.RoleName, ":* ") {
			return "", Strings{}, fmt.Errorf("kmspolicy: role name %q is empty or not a name", p.RoleName)
		}
		role = fmt.Sprintf("arn:%s:iam::%s:role/%s", partition, p.AccountID, p.RoleName)
	}
	a, ok := parseARN(role)
	if !ok || a.service != "iam" || !strings.HasPrefix(a.resource, "role/") || a.account != p.AccountID || a.partition != partition {
		return "", Strings{}, fmt.Errorf("kmspolicy: role %q is not an IAM role ARN in account %s (partition %s)", role, p.AccountID, partition)
	}
	switch len(p.Admins) {
	case 0:
		admins = One(fmt.Sprintf("arn:%s:iam::%s:root", partition, p.AccountID))
	case 1:
		admins = One(p.Admins[0])
	default:
		admins = List(p.Admins...)
	}
	return role, admins, nil
}
