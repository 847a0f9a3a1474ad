package preflight

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cmtproto "github.com/cometbft/cometbft/api/cometbft/types/v1"
	"github.com/cometbft/cometbft/libs/protoio"

	"github.com/tmkms-nitro/tmkms-nitro/internal/config"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// TestMain makes sure no test ever reaches the EC2 metadata service
// (169.254.169.254), whatever a test forgets to inject.
func TestMain(m *testing.M) {
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	os.Exit(m.Run())
}

const (
	region   = "ap-southeast-1"
	chainID  = "testnet-croeseid-4"
	keyARN   = "arn:aws:kms:ap-southeast-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	pubKey   = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="
	describe = `[{"EnclaveID":"i-abc-enc123","EnclaveCID":%d,"State":"RUNNING","NumberOfCPUs":2,"MemoryMiB":512,"Flags":"%s"}]`
)

// fixture is a host on which every check passes; each test case breaks
// one thing in it.
type fixture struct {
	t        *testing.T
	dir      string
	sockDir  string
	toml     map[string]string // tmkms.toml keys, values as TOML literals
	extra    string            // appended to tmkms.toml (tables)
	opts     Options
	listener net.Listener
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	// Unix socket paths are limited to 108 bytes; keep this one short.
	sockDir, err := os.MkdirTemp("", "pf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	f := &fixture{t: t, dir: dir, sockDir: sockDir}
	f.toml = map[string]string{
		"address":                   fmt.Sprintf("'unix://%s/validator.socket'", sockDir),
		"chain_id":                  "'" + chainID + "'",
		"sealed_consensus_key_path": "'secrets/secret.key'",
		"state_file_path":           "'state/priv_validator_state.json'",
		"enclave_config_cid":        "15",
		"aws_region":                "'" + region + "'",
	}
	f.mkdir("secrets", 0o700)
	f.mkdir("state", 0o700)
	f.write("secrets/secret.key", sealedKey("consensus", region, keyARN), 0o600)
	f.write("secrets/id.key", sealedKey("identity", region, keyARN), 0o600)
	f.write("state/priv_validator_state.json", nativeState(t, chainID), 0o600)
	f.write("nitro-cli", nitroCLI(fmt.Sprintf(describe, 15, "NONE")), 0o755)
	f.write("vsock-proxy", "#!/bin/sh\nexit 0\n", 0o755)
	f.write("vsock-proxy.yaml", "allowlist:\n- {address: kms."+region+".amazonaws.com, port: 443}\n", 0o644)
	f.proc("4242", "vsock-proxy", "8000", "kms."+region+".amazonaws.com", "443")
	f.listen("validator.socket")
	f.opts = Options{
		ConfigPath:  filepath.Join(dir, "tmkms.toml"),
		ProcDir:     filepath.Join(dir, "proc"),
		ProxyConfig: filepath.Join(dir, "vsock-proxy.yaml"),
		NitroCLI:    filepath.Join(dir, "nitro-cli"),
		VsockProxy:  filepath.Join(dir, "vsock-proxy"),
		Credentials: func(context.Context, *config.Config) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "s3cr3t", Source: "EC2RoleProvider",
				CanExpire: true, Expires: time.Now().Add(time.Hour)}, nil
		},
		LookupHost: func(context.Context, string) ([]string, error) { return []string{"10.0.0.7"}, nil },
		Timeout:    5 * time.Second,
	}
	return f
}

func (f *fixture) path(rel string) string { return filepath.Join(f.dir, rel) }

func (f *fixture) mkdir(rel string, mode os.FileMode) {
	f.t.Helper()
	if err := os.MkdirAll(f.path(rel), mode); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Chmod(f.path(rel), mode); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) write(rel, data string, mode os.FileMode) {
	f.t.Helper()
	if err := os.WriteFile(f.path(rel), []byte(data), mode); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Chmod(f.path(rel), mode); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) chmod(rel string, mode os.FileMode) {
	f.t.Helper()
	if err := os.Chmod(f.path(rel), mode); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) remove(rel string) {
	f.t.Helper()
	if err := os.RemoveAll(f.path(rel)); err != nil {
		f.t.Fatal(err)
	}
}

// proc adds a fake process to the fake /proc.
func (f *fixture) proc(pid string, argv ...string) {
	f.t.Helper()
	f.mkdir("proc/"+pid, 0o755)
	f.write("proc/"+pid+"/cmdline", strings.Join(argv, "\x00")+"\x00", 0o444)
}

// listen serves a validator socket in the fixture's socket directory.
func (f *fixture) listen(name string) {
	f.t.Helper()
	l, err := net.Listen("unix", filepath.Join(f.sockDir, name))
	if err != nil {
		f.t.Fatal(err)
	}
	f.listener = l
	f.t.Cleanup(func() { l.Close() })
}

// writeConfig writes tmkms.toml from f.toml and f.extra, unless a case
// already wrote one.
func (f *fixture) writeConfig() {
	var b strings.Builder
	for k, v := range f.toml {
		if v != "" {
			fmt.Fprintf(&b, "%s = %s\n", k, v)
		}
	}
	b.WriteString(f.extra)
	if _, err := os.Stat(f.path("tmkms.toml")); err == nil {
		return // a case wrote its own
	}
	f.write("tmkms.toml", b.String(), 0o600)
}

// tcpValidator sets address (a TOML value) to name tcp:// nodes, which
// need the identity key.
func (f *fixture) tcpValidator(address string) {
	f.toml["address"] = address
	f.toml["sealed_id_key_path"] = "'secrets/id.key'"
}

func (f *fixture) run() []Result {
	f.t.Helper()
	f.writeConfig()
	return Run(context.Background(), f.opts)
}

func sealedKey(purpose, region, arn string) string {
	return fmt.Sprintf(`{"version":1,"purpose":%q,"key_type":"ed25519","public_key":%q,"kms_key_id":%q,"region":%q,"ciphertext":"AQID"}`,
		purpose, pubKey, arn, region)
}

// legacyKey is a tmkms-light secret.key: the raw KMS ciphertext.
const legacyKey = "\x01\x02\x03\x00\xff\xfe binary KMS ciphertext"

func nitroCLI(describeOutput string) string {
	return "#!/bin/sh\ncase \"$1\" in\ndescribe-enclaves) echo '" + describeOutput + "' ;;\n*) echo \"unexpected $1\" >&2; exit 1 ;;\nesac\n"
}

func voteSignBytes(t *testing.T, chain string) []byte {
	t.Helper()
	sb, err := protoio.MarshalDelimited(&cmtproto.CanonicalVote{Type: cmtproto.PrevoteType, Height: 5, ChainID: chain})
	if err != nil {
		t.Fatal(err)
	}
	return sb
}

// nativeState returns the bytes of a native state file at 5/0/prevote.
func nativeState(t *testing.T, chain string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state")
	s, err := signstate.Open(path, signstate.Options{AllowMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	st := signstate.State{Height: 5, Step: signstate.StepPrevote, SignBytes: voteSignBytes(t, chain), Signature: bytes.Repeat([]byte{1}, 64)}
	if err := s.Save(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	s.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func filePVJSON(t *testing.T, chain string) string {
	return fmt.Sprintf(`{"height":"5","round":0,"step":2,"signature":"AQID","signbytes":"%X"}`, voteSignBytes(t, chain))
}

func TestBaselinePasses(t *testing.T) {
	f := newFixture(t)
	rs := f.run()
	for _, r := range rs {
		if r.Status != Pass && r.Name != CheckAnchor {
			t.Errorf("%s: %s %s (hint: %s)", r.Name, r.Status, r.Detail, r.Hint)
		}
	}
	if r, _ := find(rs, CheckAnchor); r.Status != Warn || !strings.Contains(r.Detail, "no anchor: across enclave restarts the enclave trusts this host's state file") {
		t.Errorf("without an anchor: %s %q, want a warning that the host is trusted", r.Status, r.Detail)
	}
	var names []string
	for _, r := range rs {
		names = append(names, r.Name)
	}
	want := []string{CheckConfig, CheckConsensusKey, CheckStateFile, CheckNitroCLI, CheckEnclave, CheckVsockProxy,
		CheckAllowlist, CheckCredentials, CheckRegion, CheckKMSKey, CheckValidator, CheckAnchor}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("checks = %v, want %v", names, want)
	}
}

// TestEachFailure breaks one thing at a time and expects the check named
// for it to report it, and no other check to fail unless listed.
func TestEachFailure(t *testing.T) {
	cases := []struct {
		name       string
		breakIt    func(f *fixture)
		check      string
		want       Status
		detail     string   // substring of the detail
		alsoFailed []string // other checks expected to fail
	}{
		{name: "config missing", check: CheckConfig, want: Fail, detail: "failed to read config",
			breakIt: func(f *fixture) { f.opts.ConfigPath = f.path("nonexistent.toml") }},
		{name: "config unknown key", check: CheckConfig, want: Fail, detail: "enclave_config_pot: unknown key",
			breakIt: func(f *fixture) { f.toml["enclave_config_pot"] = "5050" }},
		{name: "bad --cid", check: CheckConfig, want: Fail, detail: "--cid",
			breakIt: func(f *fixture) { f.opts.CID = 2 }},

		{name: "consensus key missing", check: CheckConsensusKey, want: Fail, detail: "does not exist",
			breakIt: func(f *fixture) { f.remove("secrets/secret.key") }},
		{name: "consensus key world-readable", check: CheckConsensusKey, want: Fail, detail: "mode 0644",
			breakIt: func(f *fixture) { f.chmod("secrets/secret.key", 0o644) }},
		{name: "consensus key group-readable", check: CheckConsensusKey, want: Fail, detail: "mode 0640",
			breakIt: func(f *fixture) { f.chmod("secrets/secret.key", 0o640) }},
		{name: "consensus key malformed", check: CheckConsensusKey, want: Fail, detail: "malformed sealed key file",
			breakIt: func(f *fixture) { f.write("secrets/secret.key", "not a key\n", 0o600) }},
		{name: "consensus key is an identity key", check: CheckConsensusKey, want: Fail, detail: "holds a identity key",
			breakIt: func(f *fixture) { f.write("secrets/secret.key", sealedKey("identity", region, keyARN), 0o600) }},
		{name: "consensus key is a directory", check: CheckConsensusKey, want: Fail, detail: "not a regular file",
			breakIt: func(f *fixture) { f.remove("secrets/secret.key"); f.mkdir("secrets/secret.key", 0o700) }},

		{name: "state missing", check: CheckStateFile, want: Fail, detail: "does not exist",
			breakIt: func(f *fixture) { f.remove("state/priv_validator_state.json") }},
		{name: "state missing but allowed", check: CheckStateFile, want: Warn, detail: "allow_missing_state is set",
			breakIt: func(f *fixture) {
				f.remove("state/priv_validator_state.json")
				f.toml["allow_missing_state"] = "true"
			}},
		{name: "state directory missing", check: CheckStateFile, want: Fail, detail: "the state directory",
			breakIt: func(f *fixture) { f.remove("state") }},
		{name: "state directory world-writable", check: CheckStateFile, want: Fail, detail: "writable by group or others",
			breakIt: func(f *fixture) { f.chmod("state", 0o777) }},
		{name: "state world-writable", check: CheckStateFile, want: Fail, detail: "mode 0666",
			breakIt: func(f *fixture) { f.chmod("state/priv_validator_state.json", 0o666) }},
		{name: "state world-readable", check: CheckStateFile, want: Warn, detail: "mode 0644",
			breakIt: func(f *fixture) { f.chmod("state/priv_validator_state.json", 0o644) }},
		{name: "state corrupt", check: CheckStateFile, want: Fail, detail: "corrupt state",
			breakIt: func(f *fixture) {
				f.write("state/priv_validator_state.json", strings.Repeat("x", 2048), 0o600)
			}},
		{name: "state JSON corrupt", check: CheckStateFile, want: Fail, detail: "corrupt state",
			breakIt: func(f *fixture) { f.write("state/priv_validator_state.json", `{"height":"x"}`, 0o600) }},
		{name: "state of another chain", check: CheckStateFile, want: Fail, detail: "signed for chain other-chain",
			breakIt: func(f *fixture) {
				f.write("state/priv_validator_state.json", nativeState(f.t, "other-chain"), 0o600)
			}},
		{name: "FilePV JSON state of another chain", check: CheckStateFile, want: Fail, detail: "signed for chain other-chain",
			breakIt: func(f *fixture) {
				f.write("state/priv_validator_state.json", filePVJSON(f.t, "other-chain"), 0o600)
			}},

		{name: "nitro-cli missing", check: CheckNitroCLI, want: Fail, detail: "not found",
			breakIt: func(f *fixture) { f.opts.NitroCLI = f.path("no-such-nitro-cli") }},
		{name: "nitro-cli fails", check: CheckEnclave, want: Fail, detail: "permission denied",
			breakIt: func(f *fixture) {
				f.write("nitro-cli", "#!/bin/sh\necho 'open /dev/nitro_enclaves: permission denied' >&2\nexit 1\n", 0o755)
			}},
		{name: "no enclave at the CID", check: CheckEnclave, want: Fail, detail: "no enclave runs with CID 15 (running: CID 16)",
			breakIt: func(f *fixture) { f.write("nitro-cli", nitroCLI(fmt.Sprintf(describe, 16, "NONE")), 0o755) }},
		{name: "no enclave, --cid", check: CheckEnclave, want: Fail, detail: "no enclave runs with CID 77",
			breakIt: func(f *fixture) { f.opts.CID = 77 }},
		{name: "no enclave at all", check: CheckEnclave, want: Fail, detail: "no enclave runs with CID 15",
			breakIt: func(f *fixture) { f.write("nitro-cli", nitroCLI("[]"), 0o755) }},
		{name: "enclave in debug mode", check: CheckEnclave, want: Warn, detail: "debug mode",
			breakIt: func(f *fixture) { f.write("nitro-cli", nitroCLI(fmt.Sprintf(describe, 15, "DEBUG_MODE")), 0o755) }},
		{name: "enclave already running before launch", check: CheckEnclave, want: Warn, detail: "launch-all cannot start another",
			breakIt: func(f *fixture) { f.opts.PreLaunch = true }},

		{name: "no vsock-proxy", check: CheckVsockProxy, want: Fail, detail: "no vsock-proxy forwards vsock port 8000",
			breakIt: func(f *fixture) { f.remove("proc/4242") }},
		{name: "vsock-proxy not installed", check: CheckVsockProxy, want: Fail, detail: "not found",
			breakIt: func(f *fixture) { f.remove("proc/4242"); f.remove("vsock-proxy") }},
		{name: "vsock-proxy for another region", check: CheckVsockProxy, want: Fail, detail: "to kms.us-east-1.amazonaws.com:443, not kms.ap-southeast-1",
			breakIt: func(f *fixture) {
				f.proc("4242", "/usr/bin/vsock-proxy", "8000", "kms.us-east-1.amazonaws.com", "443", "--config", "/etc/nitro_enclaves/vsock-proxy.yaml")
			}},
		{name: "no /proc", check: CheckVsockProxy, want: Fail, detail: "cannot list processes",
			breakIt: func(f *fixture) { f.opts.ProcDir = f.path("no-proc") }},

		{name: "allowlist missing", check: CheckAllowlist, want: Fail, detail: "does not exist",
			breakIt: func(f *fixture) { f.remove("vsock-proxy.yaml") }},
		{name: "allowlist without the region", check: CheckAllowlist, want: Fail, detail: "does not allow kms.ap-southeast-1.amazonaws.com:443",
			breakIt: func(f *fixture) {
				f.write("vsock-proxy.yaml", "allowlist:\n- {address: kms.us-east-1.amazonaws.com, port: 443}\n- {address: kms.ap-southeast-1.amazonaws.com, port: 80}\n", 0o644)
			}},
		{name: "allowlist not YAML", check: CheckAllowlist, want: Fail, detail: "yaml",
			breakIt: func(f *fixture) { f.write("vsock-proxy.yaml", "allowlist: [\n", 0o644) }},

		{name: "no instance role", check: CheckCredentials, want: Fail, detail: "no AWS credentials for the instance role",
			breakIt: func(f *fixture) {
				f.opts.Credentials = func(context.Context, *config.Config) (aws.Credentials, error) {
					return aws.Credentials{}, errors.New("no EC2 IMDS role found")
				}
			}},
		{name: "static credentials in a readable tmkms.toml", check: CheckCredentials, want: Fail, detail: "holds an AWS secret key",
			breakIt: func(f *fixture) {
				f.extra = "[credentials]\naws_key_id = 'AKIDEXAMPLE'\naws_secret_key = 'not-a-real-secret'\n"
				f.writeConfig()
				f.chmod("tmkms.toml", 0o644)
			}},

		{name: "key sealed in another region", check: CheckRegion, want: Fail, detail: "sealed with KMS in us-east-1, but aws_region is ap-southeast-1",
			breakIt: func(f *fixture) { f.write("secrets/secret.key", sealedKey("consensus", "us-east-1", "k"), 0o600) }},
		{name: "key ARN in another region", check: CheckRegion, want: Fail, detail: "in eu-west-1",
			breakIt: func(f *fixture) {
				f.write("secrets/secret.key", sealedKey("consensus", region, strings.Replace(keyARN, region, "eu-west-1", 1)), 0o600)
			}},
		{name: "kms_key_id in another region", check: CheckRegion, want: Fail, detail: "kms_key_id arn:aws:kms:eu-west-1",
			alsoFailed: []string{CheckKMSKey},
			breakIt:    func(f *fixture) { f.toml["kms_key_id"] = "'" + strings.Replace(keyARN, region, "eu-west-1", 1) + "'" }},
		{name: "tmkms-light key without kms_key_id", check: CheckKMSKey, want: Fail, detail: "does not record its KMS key",
			breakIt: func(f *fixture) { f.write("secrets/secret.key", legacyKey, 0o600) }},
		{name: "tmkms-light key: region unknown", check: CheckRegion, want: Warn, detail: "records no region",
			alsoFailed: []string{CheckKMSKey},
			breakIt:    func(f *fixture) { f.write("secrets/secret.key", legacyKey, 0o600) }},
		{name: "kms_key_id pins another key", check: CheckKMSKey, want: Fail, detail: "but kms_key_id pins 99999999",
			breakIt: func(f *fixture) { f.toml["kms_key_id"] = "'99999999-0000-0000-0000-000000000000'" }},

		{name: "validator socket missing", check: CheckValidator, want: Fail, detail: "is the node running?",
			breakIt: func(f *fixture) { f.listener.Close() }},
		{name: "validator socket missing before launch", check: CheckValidator, want: Warn, detail: "is the node running?",
			breakIt: func(f *fixture) {
				f.listener.Close()
				f.opts.PreLaunch = true
				f.write("nitro-cli", nitroCLI("[]"), 0o755)
			}},
		{name: "validator socket directory missing", check: CheckValidator, want: Fail, detail: "directory",
			breakIt: func(f *fixture) { f.toml["address"] = "'unix://" + f.path("nodir/validator.socket") + "'" }},
		{name: "validator address is a file", check: CheckValidator, want: Fail, detail: "not a socket",
			breakIt: func(f *fixture) { f.toml["address"] = "'unix://" + f.path("nitro-cli") + "'" }},
		{name: "validator host does not resolve", check: CheckValidator, want: Fail, detail: "cannot resolve node.invalid",
			breakIt: func(f *fixture) {
				f.tcpValidator("'tcp://node.invalid:26659'")
				f.opts.LookupHost = func(context.Context, string) ([]string, error) { return nil, errors.New("no such host") }
			}},
		{name: "tcp validator without identity key file", check: CheckIdentityKey, want: Fail, detail: "does not exist",
			breakIt: func(f *fixture) {
				f.tcpValidator("'tcp://127.0.0.1:26659'")
				f.remove("secrets/id.key")
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			c.breakIt(f)
			rs := f.run()
			got, ok := find(rs, c.check)
			if !ok {
				t.Fatalf("no %s check in %v", c.check, rs)
			}
			if got.Status != c.want || !strings.Contains(got.Detail, c.detail) {
				t.Errorf("%s = %s %q, want %s containing %q", c.check, got.Status, got.Detail, c.want, c.detail)
			}
			if got.Status != Pass && got.Hint == "" {
				t.Errorf("%s %s has no hint", c.check, got.Status)
			}
			for _, r := range rs {
				if r.Status == Fail && r.Name != c.check && !contains(c.alsoFailed, r.Name) {
					t.Errorf("unexpected failure of %s: %s", r.Name, r.Detail)
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestPasses covers the variants that must pass, not only the baseline.
func TestPasses(t *testing.T) {
	cases := []struct {
		name    string
		change  func(f *fixture)
		check   string
		detail  string
		preLnch bool
	}{
		{name: "FilePV JSON state", check: CheckStateFile, detail: "filepv JSON state at 5/0/prevote; start converts it",
			change: func(f *fixture) { f.write("state/priv_validator_state.json", filePVJSON(f.t, chainID), 0o600) }},
		{name: "tmkms-light JSON state", check: CheckStateFile, detail: "tmkms-light JSON state at 5/0/prevote",
			change: func(f *fixture) {
				f.write("state/priv_validator_state.json", `{"height":"5","round":"0","step":1,"block_id":null}`, 0o600)
			}},
		{name: "enclave and proxy not started before launch", check: CheckEnclave, detail: "expected before launch", preLnch: true,
			change: func(f *fixture) { f.write("nitro-cli", nitroCLI("[]"), 0o755); f.remove("proc/4242") }},
		{name: "vsock-proxy through an interpreter", check: CheckVsockProxy, detail: "pid 77 forwards vsock port 8000",
			change: func(f *fixture) {
				f.remove("proc/4242")
				f.proc("77", "/bin/sh", "/usr/bin/vsock-proxy", "-w", "4", "8000", "kms."+region+".amazonaws.com", "443")
			}},
		{name: "vsock-proxy with its own allowlist", check: CheckVsockProxy, detail: "pass --proxy-config /opt/allow.yaml",
			change: func(f *fixture) {
				f.proc("4242", "vsock-proxy", "--config=/opt/allow.yaml", "8000", "kms."+region+".amazonaws.com", "443")
			}},
		{name: "static credentials, owner-only tmkms.toml", check: CheckCredentials, detail: "static [credentials]",
			change: func(f *fixture) {
				f.extra = "[credentials]\naws_key_id = 'AKIDEXAMPLE'\naws_secret_key = 'not-a-real-secret'\n"
			}},
		{name: "kms_key_id pinned by key id", check: CheckKMSKey, detail: "kms_key_id pins 1234abcd",
			change: func(f *fixture) { f.toml["kms_key_id"] = "'1234abcd-12ab-34cd-56ef-1234567890ab'" }},
		{name: "tmkms-light key with an ARN kms_key_id", check: CheckRegion, detail: "in ap-southeast-1",
			change: func(f *fixture) {
				f.write("secrets/secret.key", legacyKey, 0o600)
				f.toml["kms_key_id"] = "'" + keyARN + "'"
			}},
		{name: "tcp validator by IP", check: CheckIdentityKey, detail: "identity key",
			change: func(f *fixture) { f.tcpValidator("'tcp://127.0.0.1:26659'") }},
		{name: "tcp validator second in a list", check: CheckIdentityKey, detail: "identity key",
			change: func(f *fixture) { f.tcpValidator("[" + f.toml["address"] + ", 'tcp://127.0.0.1:26659']") }},
		{name: "every node of a list", check: CheckValidator, detail: "; tcp://127.0.0.1:26659",
			change: func(f *fixture) { f.tcpValidator("[" + f.toml["address"] + ", 'tcp://127.0.0.1:26659']") }},
		{name: "tcp validator by name", check: CheckValidator, detail: "node.example resolves to 10.0.0.7",
			change: func(f *fixture) { f.tcpValidator("'tcp://node.example:26659'") }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			f.opts.PreLaunch = c.preLnch
			c.change(f)
			rs := f.run()
			for _, r := range rs {
				if r.Status != Pass && r.Name != CheckAnchor {
					t.Errorf("%s: %s %s", r.Name, r.Status, r.Detail)
				}
			}
			if got, _ := find(rs, c.check); !strings.Contains(got.Detail, c.detail) {
				t.Errorf("%s detail %q does not contain %q", c.check, got.Detail, c.detail)
			}
		})
	}
}

// TestStateReadOnly: checking a JSON state file neither migrates nor
// locks it, and a native one is read without its lock.
func TestStateReadOnly(t *testing.T) {
	for _, content := range []string{"json", "native"} {
		t.Run(content, func(t *testing.T) {
			f := newFixture(t)
			data := nativeState(t, chainID)
			if content == "json" {
				data = filePVJSON(t, chainID)
			}
			f.write("state/priv_validator_state.json", data, 0o600)
			// A running signer holds the lock; check must not need it.
			held, err := signstate.Open(f.path("state/other"), signstate.Options{AllowMissing: true})
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			before := listDir(t, f.path("state"))
			if r, _ := find(f.run(), CheckStateFile); r.Status != Pass {
				t.Fatalf("state-file: %s %s", r.Status, r.Detail)
			}
			if after := listDir(t, f.path("state")); after != before {
				t.Errorf("state directory changed: %s -> %s", before, after)
			}
			if got, _ := os.ReadFile(f.path("state/priv_validator_state.json")); string(got) != data {
				t.Error("the state file changed")
			}
		})
	}
}

func listDir(t *testing.T, dir string) string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return strings.Join(names, ",")
}

// TestConfigFailureSkipsTheRest: nothing else can run without a config.
func TestConfigFailureSkipsTheRest(t *testing.T) {
	f := newFixture(t)
	f.opts.ConfigPath = f.path("missing.toml")
	rs := f.run()
	if Count(rs, Fail) != 1 || Count(rs, Skip) != len(rs)-1 {
		t.Errorf("want one FAIL and the rest SKIP, got %+v", rs)
	}
}

// TestDefaultCredentialsWithoutIMDS runs the real SDK chain with the
// metadata service disabled and no other source: it must fail fast, and
// never leave this machine.
func TestDefaultCredentialsWithoutIMDS(t *testing.T) {
	for k, v := range map[string]string{
		"AWS_EC2_METADATA_DISABLED":              "true",
		"AWS_CONFIG_FILE":                        filepath.Join(t.TempDir(), "none"),
		"AWS_SHARED_CREDENTIALS_FILE":            filepath.Join(t.TempDir(), "none"),
		"AWS_ACCESS_KEY_ID":                      "",
		"AWS_SECRET_ACCESS_KEY":                  "",
		"AWS_SESSION_TOKEN":                      "",
		"AWS_PROFILE":                            "",
		"AWS_WEB_IDENTITY_TOKEN_FILE":            "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI":     "",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
	} {
		t.Setenv(k, v)
	}
	f := newFixture(t)
	f.opts.Credentials = nil
	start := time.Now()
	r, _ := find(f.run(), CheckCredentials)
	if r.Status != Fail || !strings.Contains(r.Detail, "no AWS credentials") {
		t.Errorf("credentials = %s %q, want FAIL", r.Status, r.Detail)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("took %v: did it wait for a network?", d)
	}
}

func TestParseProxyCmdline(t *testing.T) {
	cases := []struct {
		argv []string
		ok   bool
		want proxyProcess
	}{
		{[]string{"vsock-proxy", "8000", "kms.x.amazonaws.com", "443"}, true, proxyProcess{localPort: "8000", remoteHost: "kms.x.amazonaws.com", rPort: "443"}},
		{[]string{"/usr/bin/vsock-proxy", "-4", "--num_workers", "8", "8000", "h", "443", "--config", "/c.yaml"}, true,
			proxyProcess{localPort: "8000", remoteHost: "h", rPort: "443", config: "/c.yaml"}},
		{[]string{"bash", "/usr/bin/vsock-proxy", "8001", "h", "443"}, true, proxyProcess{localPort: "8001", remoteHost: "h", rPort: "443"}},
		{[]string{"vsock-proxy", "8000"}, false, proxyProcess{}},
		{[]string{"sleep", "vsock-proxy"}, false, proxyProcess{}},
		{[]string{"my-vsock-proxy", "8000", "h", "443"}, false, proxyProcess{}},
	}
	for _, c := range cases {
		got, ok := parseProxyCmdline("vsock-proxy", []byte(strings.Join(c.argv, "\x00")+"\x00"))
		if ok != c.ok || got != c.want {
			t.Errorf("%q: got %+v %v, want %+v %v", c.argv, got, ok, c.want, c.ok)
		}
	}
}

func TestWrite(t *testing.T) {
	var b bytes.Buffer
	err := Write(&b, []Result{
		{Name: CheckConfig, Status: Pass, Detail: "ok\nstill ok"},
		{Name: CheckStateFile, Status: Fail, Detail: "gone", Hint: "copy it\nor allow it"},
		{Name: CheckRegion, Status: Skip, Detail: "needs x", Hint: "not shown"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "PASS  config           ok; still ok\n" +
		"FAIL  state-file       gone\n" +
		"                       hint: copy it\n" +
		"                       hint: or allow it\n" +
		"SKIP  region           needs x\n" +
		"3 checks: 1 passed, 0 warned, 1 failed, 1 skipped\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// TestNoSecretInOutput: the secret key and session token never appear.
func TestNoSecretInOutput(t *testing.T) {
	f := newFixture(t)
	f.extra = "[credentials]\naws_key_id = 'AKIDEXAMPLE'\naws_secret_key = 'very-secret-value'\naws_session_token = 'session-secret'\n"
	f.writeConfig()
	f.chmod("tmkms.toml", 0o644)
	var b bytes.Buffer
	if err := Write(&b, f.run()); err != nil {
		t.Fatal(err)
	}
	if s := b.String(); strings.Contains(s, "very-secret-value") || strings.Contains(s, "session-secret") || strings.Contains(s, "s3cr3t") {
		t.Errorf("secret in output:\n%s", s)
	}
}

// TestShippedAllowlist: deploy/vsock-proxy.yaml allows tmkms-light's region
// and nothing else.
func TestShippedAllowlist(t *testing.T) {
	for _, c := range []struct {
		region string
		want   Status
	}{{"ap-southeast-1", Pass}, {"us-east-1", Fail}} {
		f := newFixture(t)
		f.opts.ProxyConfig = filepath.Join("..", "..", "deploy", "vsock-proxy.yaml")
		f.toml["aws_region"] = "'" + c.region + "'"
		f.write("secrets/secret.key", sealedKey("consensus", c.region, "k"), 0o600)
		if r, _ := find(f.run(), CheckAllowlist); r.Status != c.want {
			t.Errorf("%s: %s %s, want %s", c.region, r.Status, r.Detail, c.want)
		}
	}
}

// find returns the result named name, if any.
func find(rs []Result, name string) (Result, bool) {
	for _, r := range rs {
		if r.Name == name {
			return r, true
		}
	}
	return Result{}, false
}

// TestSeveralChains: with [[validator]] tables, the checks of a chain's
// settings run once per chain and name it, and one chain's problem (here
// a state file signed for another chain) fails that chain's line alone.
func TestSeveralChains(t *testing.T) {
	f := newFixture(t)
	f.write("state/b.json", nativeState(t, "chain-c"), 0o600)
	table := "\n[[validator]]\naddress = 'unix://%s/validator.socket'\nchain_id = '%s'\nsealed_consensus_key_path = 'secrets/secret.key'\nstate_file_path = '%s'\n"
	f.write("tmkms.toml", "aws_region = '"+region+"'\nenclave_config_cid = 15\n"+
		fmt.Sprintf(table, f.sockDir, chainID, "state/priv_validator_state.json")+
		strings.Replace(fmt.Sprintf(table, f.sockDir, "chain-b", "state/b.json"), "validator.socket", "b.socket", 1), 0o600)
	f.listen("b.socket")
	rs := f.run()
	got := map[string][]string{}
	for _, r := range rs {
		got[r.Name] = append(got[r.Name], r.Status.String()+" "+r.Detail)
	}
	for _, name := range []string{CheckConsensusKey, CheckStateFile, CheckValidator, CheckAnchor} {
		if len(got[name]) != 2 || !strings.Contains(got[name][0], "chain "+chainID+": ") || !strings.Contains(got[name][1], "chain chain-b: ") {
			t.Errorf("%s: %q, want one line per chain, each naming it", name, got[name])
		}
	}
	if s := got[CheckStateFile]; len(s) != 2 || !strings.HasPrefix(s[0], "PASS") || !strings.HasPrefix(s[1], "FAIL") || !strings.Contains(s[1], "signed for chain chain-c") {
		t.Errorf("state-file: %q, want chain-b's alone to fail", s)
	}
	if s := got[CheckRegion]; len(s) != 1 || !strings.HasPrefix(s[0], "PASS") {
		t.Errorf("region: %q, want one shared line", s)
	}
	if n := Count(rs, Fail); n != 1 {
		t.Errorf("%d failures, want 1:\n%v", n, got)
	}
}
