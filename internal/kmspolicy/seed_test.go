package kmspolicy

import (
	"flag"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tmkms-nitro/tmkms-nitro/internal/golden"
	"github.com/tmkms-nitro/tmkms-nitro/internal/pcr"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

const (
	testAccount  = "111122223333"
	testRole     = "tmkms-enclave"
	testRoleARN  = "arn:aws:iam::111122223333:role/tmkms-enclave"
	testInstance = "i-0123456789abcdef0"
)

// testPCR0 is a real PCR0 printed by nitro-cli build-enclave
// (aws-nitro-enclaves-sdk-c docs/kmstool.md).
const testPCR0 = "287b24930a9f0fe14b01a71ecdc00d8be8fad90f9834d547158854b8279c74095c43f8d7f047714e98deb7903f20e3dd"

func testPCR4() string { v := pcr.PCR4(testInstance); return pcr.Hex(v) }

func seedParams() Params {
	return Params{AccountID: testAccount, RoleName: testRole, PCR0: []string{testPCR0}, PCR4: []string{testPCR4()}}
}

func mustSeed(t *testing.T, p Params) Policy {
	t.Helper()
	pol, err := Seed(p)
	if err != nil {
		t.Fatalf("Seed: %v", err)
	}
	return pol
}

func TestSeedGolden(t *testing.T) {
	got, err := Marshal(mustSeed(t, seedParams()))
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "seed-policy.golden.json"), got, *update)
}

func TestSeedRoundTripsAndValidates(t *testing.T) {
	for name, p := range map[string]Params{
		"default":    seedParams(),
		"debug":      {AccountID: testAccount, RoleName: testRole, Debug: true, PCR4: []string{testPCR4()}},
		"all pins":   {AccountID: testAccount, RoleARN: testRoleARN, PCR0: []string{testPCR0}, PCR4: []string{testPCR4()}, PCR3: testPCR4(), PCR8: testPCR0, ImageSha384: testPCR0},
		"no deny":    {AccountID: testAccount, RoleName: testRole, PCR0: []string{testPCR0}, PCR4: []string{testPCR4()}, NoDeny: true},
		"two admins": {AccountID: testAccount, RoleName: testRole, PCR0: []string{testPCR0}, PCR4: []string{testPCR4()}, Admins: []string{"arn:aws:iam::111122223333:role/a", "arn:aws:iam::111122223333:role/b"}},
		"china":      {Partition: "aws-cn", AccountID: testAccount, RoleName: testRole, PCR0: []string{testPCR0}, PCR4: []string{testPCR4()}},
	} {
		t.Run(name, func(t *testing.T) {
			pol := mustSeed(t, p)
			if err := pol.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			data, err := Marshal(pol)
			if err != nil {
				t.Fatal(err)
			}
			back, err := Parse(data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(back, pol) {
				t.Errorf("round trip changed the policy:\n got %+v\nwant %+v", back, pol)
			}
		})
	}
}

func TestSeedDebugPinsZeroPCR0(t *testing.T) {
	pol := mustSeed(t, Params{AccountID: testAccount, RoleName: testRole, Debug: true, PCR4: []string{testPCR4()}})
	got := pol.Statement[1].Condition[StringEqualsIgnoreCase][KeyPCR(0)].Values
	if len(got) != 1 || got[0] != DebugPCR || DebugPCR != strings.Repeat("0", 96) {
		t.Errorf("debug PCR0 condition = %q", got)
	}
}

func TestSeedNormalisesHexToLowerCase(t *testing.T) {
	p := seedParams()
	p.PCR0 = []string{strings.ToUpper(p.PCR0[0])}
	pol := mustSeed(t, p)
	if got := pol.Statement[1].Condition[StringEqualsIgnoreCase][KeyPCR(0)].Values[0]; got != testPCR0 {
		t.Errorf("PCR0 = %s, want lower case %s", got, testPCR0)
	}
}

func TestSeedRejects(t *testing.T) {
	edit := func(f func(*Params)) Params { p := seedParams(); f(&p); return p }
	for name, p := range map[string]Params{
		"short account":        edit(func(p *Params) { p.AccountID = "1234" }),
		"no role":              edit(func(p *Params) { p.RoleName = "" }),
		"role name with colon": edit(func(p *Params) { p.RoleName = "a:b" }),
		"role ARN of a user":   edit(func(p *Params) { p.RoleARN = "arn:aws:iam::111122223333:user/bob" }),
		"role in other acct":   edit(func(p *Params) { p.RoleARN = "arn:aws:iam::999999999999:role/r" }),
		"role other partition": edit(func(p *Params) { p.RoleARN = "arn:aws-cn:iam::111122223333:role/r" }),
		"no PCR0":              edit(func(p *Params) { p.PCR0 = nil }),
		"no PCR4":              edit(func(p *Params) { p.PCR4 = nil }),
		"empty PCR4 list":      edit(func(p *Params) { p.PCR4 = []string{} }),
		"empty PCR4 value":     edit(func(p *Params) { p.PCR4 = []string{""} }),
		"short PCR0":           edit(func(p *Params) { p.PCR0 = []string{"abcd"} }),
		"non-hex PCR4":         edit(func(p *Params) { p.PCR4 = []string{strings.Repeat("zz", 48)} }),
		"second PCR4 invalid":  edit(func(p *Params) { p.PCR4 = append(p.PCR4, "abcd") }),
		"second PCR4 empty":    edit(func(p *Params) { p.PCR4 = append(p.PCR4, "") }),
		"duplicate PCR4":       edit(func(p *Params) { p.PCR4 = append(p.PCR4, p.PCR4[0]) }),
		"duplicate PCR4 case":  edit(func(p *Params) { p.PCR4 = append(p.PCR4, strings.ToUpper(p.PCR4[0])) }),
		"bad optional PCR8":    edit(func(p *Params) { p.PCR8 = "0" }),
		"debug and PCR0":       edit(func(p *Params) { p.Debug = true }),
		"duplicate PCR0":       edit(func(p *Params) { p.PCR0 = append(p.PCR0, strings.ToUpper(p.PCR0[0])) }),
		"second PCR0 invalid":  edit(func(p *Params) { p.PCR0 = append(p.PCR0, "00") }),
	} {
		if _, err := Seed(p); err == nil {
			t.Errorf("%s: Seed succeeded", name)
		} else if !strings.HasPrefix(err.Error(), "kmspolicy: ") {
			t.Errorf("%s: error %q lacks the package prefix", name, err)
		}
	}
}

func TestSeedSeveralPCR4(t *testing.T) {
	second := pcr.Hex(pcr.PCR4("i-0aaaaaaaaaaaaaaa0"))
	p := seedParams()
	p.PCR4 = append(p.PCR4, strings.ToUpper(second))
	pol := mustSeed(t, p)
	if err := pol.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	want := List(testPCR4(), second)
	if got := pol.Statement[1].Condition[StringEqualsIgnoreCase][KeyPCR(4)]; !reflect.DeepEqual(got, want) {
		t.Errorf("Allow PCR4 condition = %+v, want %+v", got, want)
	}
	var deny *Statement
	for i := range pol.Statement {
		if pol.Statement[i].Sid == DenySid(KeyPCR(4)) {
			deny = &pol.Statement[i]
		}
	}
	if deny == nil {
		t.Fatalf("no %q statement", DenySid(KeyPCR(4)))
	}
	if got := deny.Condition[StringNotEqualsIgnoreCase][KeyPCR(4)]; !reflect.DeepEqual(got, want) {
		t.Errorf("Deny PCR4 condition = %+v, want %+v", got, want)
	}
	// PCR0 keeps its single value, written as a string.
	if got := pol.Statement[1].Condition[StringEqualsIgnoreCase][KeyPCR(0)]; !reflect.DeepEqual(got, One(testPCR0)) {
		t.Errorf("PCR0 condition = %+v, want a single string", got)
	}
	data, err := Marshal(pol)
	if err != nil {
		t.Fatal(err)
	}
	array := `"` + KeyPCR(4) + `": [`
	if n := strings.Count(string(data), array); n != 2 {
		t.Errorf("policy has %d PCR4 arrays, want 2 (Allow and Deny):\n%s", n, data)
	}
	back, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if !reflect.DeepEqual(back, pol) {
		t.Errorf("round trip changed the policy:\n got %+v\nwant %+v", back, pol)
	}

	third := pcr.Hex(pcr.PCR4("i-0bbbbbbbbbbbbbbb0"))
	for _, tc := range []struct {
		name    string
		context map[string]string
		outcome Outcome
		sid     string
	}{
		{"first instance", attested(testPCR0, testPCR4()), Allowed, SidEnclave},
		{"second instance", attested(testPCR0, second), Allowed, SidEnclave},
		{"second instance, upper case", attested(testPCR0, strings.ToUpper(second)), Allowed, SidEnclave},
		{"third instance", attested(testPCR0, third), ExplicitDeny, DenySid(KeyPCR(4))},
		{"second instance, wrong image", attested(pcr.Hex(pcr.PCR3("not the image")), second), ExplicitDeny, DenySid(KeyPCR(0))},
		{"no attestation", nil, ExplicitDeny, DenySid(KeyPCR(0))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Evaluate(pol, Request{Principal: enclaveSession, Action: "kms:Decrypt", Context: tc.context})
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			if d.Outcome != tc.outcome || d.Statement != tc.sid {
				t.Errorf("got %v by %q, want %v by %q: %s", d.Outcome, d.Statement, tc.outcome, tc.sid, d)
			}
		})
	}
}

func TestRecipientContext(t *testing.T) {
	v0, v4 := pcr.PCR4("zero"), pcr.PCR4(testInstance)
	ctx := RecipientContext(map[int][]byte{0: v0[:], 4: v4[:]})
	want := map[string]string{
		"kms:RecipientAttestation:PCR0":        pcr.Hex(v0),
		"kms:RecipientAttestation:ImageSha384": pcr.Hex(v0),
		"kms:RecipientAttestation:PCR4":        pcr.Hex(v4),
	}
	if !reflect.DeepEqual(ctx, want) {
		t.Errorf("RecipientContext = %v, want %v", ctx, want)
	}
}

// TestSeedTwoImages: during an upgrade the policy names the old and the new
// image; both may decrypt, any other image hits the PCR0 Deny.
func TestSeedTwoImages(t *testing.T) {
	next := pcr.Hex(pcr.PCR3("the next image"))
	p := seedParams()
	p.PCR0 = append(p.PCR0, next)
	pol := mustSeed(t, p)
	for _, tc := range []struct {
		name    string
		pcr0    string
		outcome Outcome
	}{
		{"old image", testPCR0, Allowed},
		{"new image", next, Allowed},
		{"another image", pcr.Hex(pcr.PCR3("not the image")), ExplicitDeny},
	} {
		d, err := Evaluate(pol, Request{Principal: enclaveSession, Action: "kms:Decrypt", Context: attested(tc.pcr0, testPCR4())})
		if err != nil {
			t.Fatal(err)
		}
		if d.Outcome != tc.outcome {
			t.Errorf("%s: %v, want %v", tc.name, d.Outcome, tc.outcome)
		}
	}
}

// TestSeedRefusesKeyPlanting: a compromised host holds the instance role's
// credentials. It must not be able to choose a key's plaintext (Encrypt,
// ReEncrypt onto the key, data keys without an attested enclave) or change
// the rules, while the enclave keeps GenerateDataKey and Decrypt and an
// administrator keeps the import ceremony (Encrypt with admin credentials).
func TestSeedRefusesKeyPlanting(t *testing.T) {
	seed := seedParams()
	noDeny := seedParams()
	noDeny.NoDeny = true
	const admin = "arn:aws:iam::111122223333:user/tmkms-admin"
	wrongPCR0 := pcr.Hex(pcr.PCR3("not the image"))
	good := attested(testPCR0, testPCR4())
	checkDecisions(t, []decisionCase{
		{"role Encrypt", seed, enclaveSession, "kms:Encrypt", nil, ExplicitDeny, SidDenyRole, ""},
		{"role Encrypt even when attested", seed, enclaveSession, "kms:Encrypt", good, ExplicitDeny, SidDenyRole, ""},
		{"role ReEncryptTo", seed, enclaveSession, "kms:ReEncryptTo", good, ExplicitDeny, SidDenyRole, ""},
		{"role ReEncryptFrom", seed, enclaveSession, "kms:ReEncryptFrom", good, ExplicitDeny, SidDenyRole, ""},
		{"role GenerateDataKeyWithoutPlaintext", seed, enclaveSession, "kms:GenerateDataKeyWithoutPlaintext", good, ExplicitDeny, SidDenyRole, ""},
		{"role GenerateDataKeyPair", seed, enclaveSession, "kms:GenerateDataKeyPair", good, ExplicitDeny, SidDenyRole, ""},
		{"role GenerateDataKeyPairWithoutPlaintext", seed, enclaveSession, "kms:GenerateDataKeyPairWithoutPlaintext", good, ExplicitDeny, SidDenyRole, ""},
		{"role CreateGrant", seed, enclaveSession, "kms:CreateGrant", nil, ExplicitDeny, SidDenyRole, ""},
		{"role PutKeyPolicy", seed, enclaveSession, "kms:PutKeyPolicy", nil, ExplicitDeny, SidDenyRole, ""},
		{"role GenerateDataKey without attestation", seed, enclaveSession, "kms:GenerateDataKey", nil, ExplicitDeny, DenySid(KeyPCR(0)), ""},
		{"role GenerateDataKey with matching attestation", seed, enclaveSession, "kms:GenerateDataKey", good, Allowed, SidEnclave, ""},
		{"role GenerateDataKey with wrong PCR0", seed, enclaveSession, "kms:GenerateDataKey", attested(wrongPCR0, testPCR4()), ExplicitDeny, DenySid(KeyPCR(0)), ""},
		{"role Decrypt with matching attestation", seed, enclaveSession, "kms:Decrypt", good, Allowed, SidEnclave, ""},
		{"admin Encrypt (import ceremony)", seed, admin, "kms:Encrypt", nil, Allowed, SidAdmin, ""},
		{"admin Decrypt without attestation", seed, admin, "kms:Decrypt", nil, ExplicitDeny, DenySid(KeyPCR(0)), ""},
		{"admin GenerateDataKey without attestation", seed, admin, "kms:GenerateDataKey", nil, ExplicitDeny, DenySid(KeyPCR(0)), ""},
		{"admin GenerateDataKeyPair without attestation", seed, admin, "kms:GenerateDataKeyPair", nil, ExplicitDeny, DenySid(KeyPCR(0)), ""},
		{"admin PutKeyPolicy", seed, admin, "kms:PutKeyPolicy", nil, Allowed, SidAdmin, ""},
		{"no deny: admin Decrypt without attestation", noDeny, admin, "kms:Decrypt", nil, Allowed, SidAdmin, ""},
		{"no deny: role GenerateDataKey with matching attestation", noDeny, enclaveSession, "kms:GenerateDataKey", good, Allowed, SidEnclave, ""},
	})
}

// TestSeedNoDenyHasNoDeny: --no-deny omits the role's Deny too, and the
// role never gets kms:Encrypt in its own statement.
func TestSeedNoDenyHasNoDeny(t *testing.T) {
	p := seedParams()
	p.NoDeny = true
	for _, s := range mustSeed(t, p).Statement {
		if s.Effect == Deny {
			t.Errorf("NoDeny policy has Deny statement %q", s.Sid)
		}
		if s.Sid != SidAdmin && s.matchesAction("kms:Encrypt") {
			t.Errorf("statement %q allows kms:Encrypt", s.Sid)
		}
	}
}
