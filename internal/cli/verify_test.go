package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tmkms-nitro/tmkms-nitro/internal/nsm"
	"github.com/tmkms-nitro/tmkms-nitro/internal/softnsm"
)

const (
	testKeyARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	testPubKey = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
	testAnchor = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	testNonce  = "6e6f6e63652d3132333435"
)

// statementJSON is the user data an enclave writes for a new key.
const statementJSON = `{"public_key":"` + testPubKey + `","kms_key_id":"` + testKeyARN + `",` +
	`"sealed_key_sha256":"` + testAnchor + `","origin":"generated","chain_ids":["cosmoshub-4","theta-testnet-001"],` +
	`"anchor":"` + testAnchor + `"}`

// attestedFiles writes a software NSM's document with the given user data
// and nonce, and the NSM's root as PEM, and returns their paths and PCR0.
func attestedFiles(t *testing.T, userData string, nonce []byte) (doc, root, pcr0 string) {
	t.Helper()
	p0 := softnsm.PCR0([]byte("tmkms-nitro-enclave"))
	soft, err := softnsm.NewSoftware(&softnsm.SoftwareConfig{PCRs: map[int][]byte{0: p0}})
	if err != nil {
		t.Fatal(err)
	}
	var ud []byte
	if userData != "" {
		ud = []byte(userData)
	}
	raw, err := soft.Attest(context.Background(), nsm.AttestRequest{UserData: ud, Nonce: nonce})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	doc, root = filepath.Join(dir, "attestation.b64"), filepath.Join(dir, "root.pem")
	if err := os.WriteFile(doc, []byte(base64.StdEncoding.EncodeToString(raw)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: soft.Root().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return doc, root, hex.EncodeToString(p0)
}

func verify(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := runVerifyAttestation(context.Background(), &Env{Stdout: &out, Stderr: &errOut}, args)
	return out.String(), err
}

func TestVerifyAttestationExpectations(t *testing.T) {
	nonce, _ := hex.DecodeString(testNonce)
	doc, root, pcr0 := attestedFiles(t, statementJSON, nonce)
	pubB64 := func() string { b, _ := hex.DecodeString(testPubKey); return base64.StdEncoding.EncodeToString(b) }()
	other := strings.Repeat("ab", 32)
	all := []string{"--expect-pubkey", testPubKey, "--expect-kms-key", testKeyARN, "--expect-origin", "generated",
		"--expect-nonce", testNonce, "--expect-pcr0", pcr0, "--expect-chain-id", "theta-testnet-001",
		"--expect-chain-id", "cosmoshub-4", "--expect-anchor", testAnchor}

	tests := []struct {
		name    string
		expect  []string
		err     error  // nil: must succeed
		mention string // in the error: the field, expected and actual values
	}{
		{"all match", all, nil, ""},
		{"none given", nil, nil, ""},
		{"public key as base64", []string{"--expect-pubkey", pubB64}, nil, ""},
		{"public key in upper-case hex", []string{"--expect-pubkey", strings.ToUpper(testPubKey)}, nil, ""},
		{"bare KMS key id", []string{"--expect-kms-key", "1234abcd-12ab-34cd-56ef-1234567890ab"}, nil, ""},
		{"anchor in upper case", []string{"--expect-anchor", strings.ToUpper(testAnchor)}, nil, ""},
		{"chain ids as a set, repeated", []string{"--expect-chain-id", "cosmoshub-4", "--expect-chain-id", "theta-testnet-001", "--expect-chain-id", "cosmoshub-4"}, nil, ""},

		{"wrong public key", []string{"--expect-pubkey", other}, errPubKeyMismatch,
			`user_data.public_key is "` + testPubKey + `", expected ` + other},
		{"wrong KMS key", []string{"--expect-kms-key", strings.Replace(testKeyARN, "1234abcd", "ffffffff", 1)}, errKMSKeyMismatch,
			`user_data.kms_key_id is "` + testKeyARN + `", expected "arn:aws:kms:us-east-1:111122223333:key/ffffffff`},
		{"KMS key id of another key", []string{"--expect-kms-key", "56ef-1234567890ab"}, errKMSKeyMismatch, `expected "56ef-1234567890ab"`},
		{"KMS key in another account", []string{"--expect-kms-key", strings.Replace(testKeyARN, "111122223333", "444455556666", 1)}, errKMSKeyMismatch, "444455556666"},
		{"wrong origin", []string{"--expect-origin", "imported"}, errOriginMismatch, `user_data.origin is "generated", expected "imported"`},
		{"wrong nonce", []string{"--expect-nonce", "00"}, errNonceMismatch, "the nonce is " + testNonce + ", expected 00"},
		{"wrong PCR0", []string{"--expect-pcr0", strings.Repeat("0", 96)}, errPCR0Mismatch, "PCR0 is " + pcr0 + ", expected " + strings.Repeat("0", 96)},
		{"a chain missing", []string{"--expect-chain-id", "cosmoshub-4"}, errChainIDsMismatch,
			`user_data.chain_ids is ["cosmoshub-4","theta-testnet-001"], expected ["cosmoshub-4"]`},
		{"a chain too many", []string{"--expect-chain-id", "cosmoshub-4", "--expect-chain-id", "theta-testnet-001", "--expect-chain-id", "osmosis-1"},
			errChainIDsMismatch, "osmosis-1"},
		{"wrong anchor", []string{"--expect-anchor", other}, errAnchorMismatch, `user_data.anchor is "` + testAnchor + `", expected "` + other + `"`},
		{"no anchor expected", []string{"--expect-anchor", ""}, errAnchorMismatch, `expected ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--root", root}, tt.expect...)
			out, err := verify(t, append(args, doc)...)
			if tt.err == nil {
				if err != nil {
					t.Fatalf("verify: %v", err)
				}
				for _, want := range []string{"verified:", `user_data.kms_key_id: "` + testKeyARN + `"`, `user_data.origin: "generated"`,
					`user_data.chain_ids: ["cosmoshub-4","theta-testnet-001"]`, `user_data.anchor: "` + testAnchor + `"`,
					`user_data.public_key: "` + testPubKey + `"`, `user_data.sealed_key_sha256: "`} {
					if !strings.Contains(out, want) {
						t.Errorf("output lacks %q:\n%s", want, out)
					}
				}
				return
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("error = %v, want %v", err, tt.err)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
			if out != "" {
				t.Errorf("a failed expectation printed the document:\n%s", out)
			}
		})
	}

	// Several mismatches are all reported.
	_, err := verify(t, "--root", root, "--expect-origin", "imported", "--expect-nonce", "00", "--expect-pcr0", strings.Repeat("0", 96), doc)
	for _, want := range []error{errOriginMismatch, errNonceMismatch, errPCR0Mismatch} {
		if !errors.Is(err, want) {
			t.Errorf("error %v does not include %v", err, want)
		}
	}
	if errors.Is(err, errKMSKeyMismatch) {
		t.Errorf("error %v reports a KMS key mismatch that is not there", err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "3 expectations failed: ") || strings.Contains(msg, "\n") {
		t.Errorf("error %q is not one line counting the failures", msg)
	}
}

// TestVerifyAttestationNoStatement: an expectation on the user data fails
// clearly when there is none, or it is not the enclave's statement; those
// on the nonce and PCR0 do not read it.
func TestVerifyAttestationNoStatement(t *testing.T) {
	tests := []struct {
		name, userData string
		mention        string
	}{
		{"no user data", "", "the document has no user data"},
		{"binary user data", "\x01\x02\x03", "not a JSON object"},
		{"JSON null", "null", "not a JSON object"},
		{"another JSON object", `{"hello":"world"}`, `unknown field "hello"`},
		{"trailing data", statementJSON + `{}`, "data after the object"},
		{"wrong type", `{"chain_ids":"cosmoshub-4"}`, "cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, root, pcr0 := attestedFiles(t, tt.userData, nil)
			for _, flag := range [][]string{{"--expect-pubkey", testPubKey}, {"--expect-kms-key", testKeyARN},
				{"--expect-origin", "generated"}, {"--expect-chain-id", "c"}, {"--expect-anchor", ""}} {
				_, err := verify(t, append(append([]string{"--root", root}, flag...), doc)...)
				if !errors.Is(err, errNoKeyStatement) || !strings.Contains(err.Error(), tt.mention) {
					t.Errorf("%s: error = %v, want %v mentioning %q", flag[0], err, errNoKeyStatement, tt.mention)
				}
			}
			if _, err := verify(t, "--root", root, "--expect-pcr0", pcr0, doc); err != nil {
				t.Errorf("--expect-pcr0 alone: %v", err)
			}
			if _, err := verify(t, "--root", root, "--expect-nonce", "00", doc); !errors.Is(err, errNonceMismatch) || !strings.Contains(err.Error(), "is (none)") {
				t.Errorf("--expect-nonce on a document without one: %v", err)
			}
		})
	}

	// A statement from an older enclave lacks origin, chain_ids and anchor:
	// expectations on what it has hold, and on what it lacks fail.
	old := `{"public_key":"` + testPubKey + `","kms_key_id":"` + testKeyARN + `","sealed_key_sha256":"00"}`
	doc, root, _ := attestedFiles(t, old, nil)
	if _, err := verify(t, "--root", root, "--expect-pubkey", testPubKey, "--expect-kms-key", testKeyARN, doc); err != nil {
		t.Errorf("old statement: %v", err)
	}
	_, err := verify(t, "--root", root, "--expect-origin", "generated", "--expect-chain-id", "c", doc)
	if !errors.Is(err, errOriginMismatch) || !errors.Is(err, errChainIDsMismatch) || !strings.Contains(err.Error(), "user_data.origin is absent") {
		t.Errorf("old statement, new expectations: %v", err)
	}
}

func TestVerifyAttestationRefusesBadExpectations(t *testing.T) {
	doc, root, _ := attestedFiles(t, statementJSON, nil)
	for _, flag := range [][]string{
		{"--expect-pubkey", "abcd"},
		{"--expect-pubkey", strings.Repeat("zz", 32)},
		{"--expect-kms-key", ""},
		{"--expect-origin", "planted"},
		{"--expect-nonce", ""},
		{"--expect-nonce", "xyz"},
		{"--expect-pcr0", "00"},
		{"--expect-chain-id", ""},
		{"--expect-anchor", "not hex"},
	} {
		if _, err := verify(t, append(append([]string{"--root", root}, flag...), doc)...); !errors.Is(err, ErrUsage) {
			t.Errorf("%q: error = %v, want a usage error", flag, err)
		}
	}
}
