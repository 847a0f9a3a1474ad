package kmspolicy

import (
	"errors"
	"strings"
	"testing"

	"github.com/tmkms-nitro/tmkms-nitro/internal/pcr"
)

const (
	enclaveSession = "arn:aws:sts::111122223333:assumed-role/tmkms-enclave/i-0123456789abcdef0"
	accountRoot    = "arn:aws:iam::111122223333:root"
	adminRole      = "arn:aws:iam::111122223333:role/key-admin"
	otherUser      = "arn:aws:iam::111122223333:user/alice"
	foreignRole    = "arn:aws:iam::444455556666:role/tmkms-enclave"
)

// attested is the request context of a Decrypt whose attestation carries
// the given PCR0 and PCR4.
func attested(pcr0, pcr4 string) map[string]string {
	return map[string]string{KeyPCR(0): pcr0, KeyImageSha384: pcr0, KeyPCR(4): pcr4}
}

func TestEvaluateSeedPolicy(t *testing.T) {
	seed := seedParams()
	noDeny := seedParams()
	noDeny.NoDeny = true
	namedAdmins := seedParams()
	namedAdmins.NoDeny = true
	namedAdmins.Admins = []string{adminRole}
	debug := seedParams()
	debug.PCR0, debug.Debug = nil, true

	wrongPCR0 := pcr.Hex(pcr.PCR3("not the image"))
	otherInstance := pcr.Hex(pcr.PCR4("i-0fffffffffffffff0"))
	good := attested(testPCR0, testPCR4())

	checkDecisions(t, []decisionCase{
		{"enclave decrypt with matching PCRs", seed, enclaveSession, "kms:Decrypt", good,
			Allowed, SidEnclave, "StringEqualsIgnoreCase kms:RecipientAttestation:PCR0"},
		{"wrong PCR0 hits the explicit deny", seed, enclaveSession, "kms:Decrypt", attested(wrongPCR0, testPCR4()),
			ExplicitDeny, DenySid(KeyPCR(0)), `request value "` + wrongPCR0 + `" matches none of`},
		{"wrong instance hits the PCR4 deny", seed, enclaveSession, "kms:Decrypt", attested(testPCR0, otherInstance),
			ExplicitDeny, DenySid(KeyPCR(4)), "PCR4"},
		{"no attestation hits the explicit deny", seed, enclaveSession, "kms:Decrypt", nil,
			ExplicitDeny, DenySid(KeyPCR(0)), "key absent from the request"},
		{"root cannot decrypt without attestation", seed, accountRoot, "kms:Decrypt", nil,
			ExplicitDeny, DenySid(KeyPCR(0)), "explicitly denies kms:Decrypt"},
		{"nobody can re-encrypt the sealed key away", seed, accountRoot, "kms:ReEncryptFrom", nil,
			ExplicitDeny, DenySid(KeyPCR(0)), "kms:ReEncryptFrom"},
		{"root still manages the key", seed, accountRoot, "kms:PutKeyPolicy", nil,
			Allowed, SidAdmin, "allows kms:PutKeyPolicy"},
		{"debug policy admits a debug enclave", debug, enclaveSession, "kms:Decrypt", attested(DebugPCR, testPCR4()),
			Allowed, SidEnclave, ""},
		{"debug policy refuses the production image", debug, enclaveSession, "kms:Decrypt", good,
			ExplicitDeny, DenySid(KeyPCR(0)), ""},
		{"instance role cannot encrypt", seed, enclaveSession, "kms:Encrypt", nil,
			ExplicitDeny, SidDenyRole, "explicitly denies kms:Encrypt"},
		{"role ARN itself, not a session", seed, testRoleARN, "kms:Encrypt", nil,
			ExplicitDeny, SidDenyRole, ""},
		{"foreign account with good PCRs", seed, foreignRole, "kms:Decrypt", good,
			ImplicitDeny, "", "no statement allows kms:Decrypt"},
		{"foreign account encrypt", seed, foreignRole, "kms:Encrypt", nil,
			ImplicitDeny, "", ""},
		{"other principal, named admins, good PCRs", namedAdmins, otherUser, "kms:Decrypt", good,
			ImplicitDeny, "", "no statement allows"},
		{"other principal, named admins, encrypt", namedAdmins, otherUser, "kms:Encrypt", nil,
			ImplicitDeny, "", ""},
		// Without the Deny, the key's safety rests on IAM: the root statement
		// reaches every principal the account's IAM policies allow.
		{"no deny: account delegation allows unattested decrypt", noDeny, enclaveSession, "kms:Decrypt", nil,
			Allowed, SidAdmin, "as a principal of account 111122223333"},
		{"no deny: account delegation lets the role plant a key", noDeny, enclaveSession, "kms:Encrypt", nil,
			Allowed, SidAdmin, "as a principal of account 111122223333"},
		{"no deny, named admins: missing attestation", namedAdmins, enclaveSession, "kms:Decrypt", nil,
			ImplicitDeny, SidEnclave, "key absent from the request"},
		{"no deny, named admins: wrong PCR0 names the statement", namedAdmins, enclaveSession, "kms:Decrypt", attested(wrongPCR0, testPCR4()),
			ImplicitDeny, SidEnclave, `"` + SidEnclave + `" does not apply: StringEqualsIgnoreCase kms:RecipientAttestation:PCR0`},
		{"PCR values compare without case", seed, enclaveSession, "kms:Decrypt", attested(strings.ToUpper(testPCR0), strings.ToUpper(testPCR4())),
			Allowed, SidEnclave, ""},
		{"context keys compare without case", seed, enclaveSession, "kms:Decrypt",
			map[string]string{"KMS:RECIPIENTATTESTATION:PCR0": testPCR0, "kms:recipientattestation:pcr4": testPCR4()},
			Allowed, SidEnclave, ""},
		{"action names compare without case", seed, enclaveSession, "KMS:decrypt", good,
			Allowed, SidEnclave, ""},
	})
}

// decisionCase is a request to a seeded policy and the decision it must
// get.
type decisionCase struct {
	name      string
	params    Params
	principal string
	action    string
	context   map[string]string
	outcome   Outcome
	statement string
	reason    string // must appear in Decision.Reason
}

func checkDecisions(t *testing.T, tests []decisionCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Evaluate(mustSeed(t, tt.params), Request{Principal: tt.principal, Action: tt.action, Context: tt.context})
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			if d.Outcome != tt.outcome || d.Statement != tt.statement {
				t.Errorf("got %v by %q, want %v by %q\nreason: %s", d.Outcome, d.Statement, tt.outcome, tt.statement, d.Reason)
			}
			if !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("reason %q does not mention %q", d.Reason, tt.reason)
			}
			if d.Allowed() != (tt.outcome == Allowed) || strings.HasPrefix(d.String(), "AccessDenied: ") == d.Allowed() {
				t.Errorf("Allowed() = %v, String() = %q", d.Allowed(), d)
			}
		})
	}
}

// conditionPolicy is an Allow for anyone, guarded by c.
func conditionPolicy(c Condition) Policy {
	return Policy{Version: Version, Statement: []Statement{{
		Sid: "guarded", Effect: Allow, Principal: Principal{Wildcard: true},
		Action: One("kms:Decrypt"), Resource: One("*"), Condition: c,
	}}}
}

func TestConditionSemantics(t *testing.T) {
	both := map[string]string{"k1": "a", "k2": "b"}
	tests := []struct {
		name string
		cond Condition
		ctx  map[string]string
		want bool
	}{
		{"StringEquals matches exactly", Condition{StringEquals: {"k1": One("a")}}, both, true},
		{"StringEquals is case-sensitive", Condition{StringEquals: {"k1": One("A")}}, both, false},
		{"StringEquals on a missing key fails", Condition{StringEquals: {"k9": One("a")}}, both, false},
		{"values are ORed", Condition{StringEquals: {"k1": List("x", "a")}}, both, true},
		{"keys are ANDed", Condition{StringEquals: {"k1": One("a"), "k2": One("x")}}, both, false},
		{"operators are ANDed", Condition{StringEquals: {"k1": One("a")}, StringNotEquals: {"k2": One("b")}}, both, false},
		{"IgnoreCase folds the value", Condition{StringEqualsIgnoreCase: {"k1": One("A")}}, both, true},
		{"condition keys fold", Condition{StringEquals: {"K1": One("a")}}, both, true},
		{"StringNotEquals holds on another value", Condition{StringNotEquals: {"k1": One("x")}}, both, true},
		{"StringNotEquals fails on the value", Condition{StringNotEquals: {"k1": One("a")}}, both, false},
		{"StringNotEquals is case-sensitive", Condition{StringNotEquals: {"k1": One("A")}}, both, true},
		{"negated values are NORed", Condition{StringNotEquals: {"k1": List("x", "a")}}, both, false},
		{"StringNotEquals holds on a missing key", Condition{StringNotEquals: {"k9": One("a")}}, both, true},
		{"NotEqualsIgnoreCase fails on a folded match", Condition{StringNotEqualsIgnoreCase: {"k1": One("A")}}, both, false},
		{"NotEqualsIgnoreCase holds on a missing key", Condition{StringNotEqualsIgnoreCase: {"k9": One("a")}}, nil, true},
		{"Null true holds when absent", Condition{Null: {"k9": One("true")}}, both, true},
		{"Null true fails when present", Condition{Null: {"k1": One("true")}}, both, false},
		{"Null false holds when present", Condition{Null: {"k1": One("false")}}, both, true},
		{"Null false fails when absent", Condition{Null: {"k9": One("false")}}, both, false},
		{"empty value is present", Condition{Null: {"k1": One("true")}}, map[string]string{"k1": ""}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Evaluate(conditionPolicy(tt.cond), Request{Principal: otherUser, Action: "kms:Decrypt", Context: tt.ctx})
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			if d.Allowed() != tt.want {
				t.Errorf("allowed = %v, want %v (%s)", d.Allowed(), tt.want, d.Reason)
			}
		})
	}
}

func TestEvaluateFailsClosed(t *testing.T) {
	unknownOp := conditionPolicy(Condition{"StringLike": {"kms:RecipientAttestation:PCR0": One("*")}})
	badNull := conditionPolicy(Condition{Null: {"k": One("maybe")}})
	good := conditionPolicy(nil)
	tests := []struct {
		name     string
		policy   Policy
		req      Request
		sentinel error
		mention  string
	}{
		{"unknown operator", unknownOp, Request{Principal: otherUser, Action: "kms:Decrypt"}, ErrUnsupported, `condition operator "StringLike"`},
		{"invalid Null value", badNull, Request{Principal: otherUser, Action: "kms:Decrypt"}, ErrInvalidPolicy, `"maybe"`},
		{"empty policy", Policy{}, Request{Principal: otherUser, Action: "kms:Decrypt"}, ErrInvalidPolicy, "Version"},
		{"principal not an ARN", good, Request{Principal: "alice", Action: "kms:Decrypt"}, ErrInvalidRequest, `"alice"`},
		{"principal without account", good, Request{Principal: "arn:aws:iam:::user/x", Action: "kms:Decrypt"}, ErrInvalidRequest, ""},
		{"action without service", good, Request{Principal: otherUser, Action: "Decrypt"}, ErrInvalidRequest, `"Decrypt"`},
		{"wildcard action", good, Request{Principal: otherUser, Action: "kms:*"}, ErrInvalidRequest, ""},
		{"context keys colliding by case", good, Request{Principal: otherUser, Action: "kms:Decrypt",
			Context: map[string]string{"k": "1", "K": "2"}}, ErrInvalidRequest, "differ only in case"},
		{"empty context key", good, Request{Principal: otherUser, Action: "kms:Decrypt",
			Context: map[string]string{"": "1"}}, ErrInvalidRequest, "empty context key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Evaluate(tt.policy, tt.req)
			if !errors.Is(err, tt.sentinel) {
				t.Fatalf("error = %v, want %v", err, tt.sentinel)
			}
			if d.Allowed() {
				t.Error("an error came with an allowing decision")
			}
			if !strings.Contains(err.Error(), tt.mention) || !strings.HasPrefix(err.Error(), "kmspolicy: ") {
				t.Errorf("error %q does not start with kmspolicy: or mention %q", err, tt.mention)
			}
		})
	}
}

func TestEvaluateUnnamedStatementAndResource(t *testing.T) {
	keyARN := "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	pol := Policy{Version: Version, Statement: []Statement{{
		Effect: Allow, Principal: Principal{AWS: One(testAccount)},
		Action: One("kms:Re*From"), Resource: One("arn:aws:kms:us-east-1:111122223333:key/*"),
	}}}
	tests := []struct {
		resource string
		action   string
		want     bool
	}{
		{keyARN, "kms:ReEncryptFrom", true},
		{keyARN, "kms:ReEncryptTo", false},
		{"", "kms:ReEncryptFrom", false}, // a specific Resource needs the key ARN
		{"arn:aws:kms:eu-west-1:111122223333:key/x", "kms:ReEncryptFrom", false},
	}
	for _, tt := range tests {
		d, err := Evaluate(pol, Request{Principal: otherUser, Action: tt.action, Resource: tt.resource})
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed() != tt.want {
			t.Errorf("%s on %q: allowed = %v, want %v (%s)", tt.action, tt.resource, d.Allowed(), tt.want, d.Reason)
		}
		if d.Allowed() && d.Statement != "#1" {
			t.Errorf("unnamed statement reported as %q, want #1", d.Statement)
		}
	}
}
