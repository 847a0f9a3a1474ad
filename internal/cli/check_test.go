package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkHost writes a host on which every check passes: a tcp:// validator
// by IP (no socket needed), static credentials, a FilePV state, a fake
// nitro-cli, a fake /proc with vsock-proxy, and its allowlist.
func checkHost(t *testing.T) (dir string, env *Env, stdout *bytes.Buffer) {
	t.Helper()
	dir = t.TempDir()
	key := func(purpose string) string {
		return `{"version":1,"purpose":"` + purpose + `","key_type":"ed25519","public_key":"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=","kms_key_id":"k","region":"ap-southeast-1","ciphertext":"AQID"}`
	}
	files := map[string]string{
		"tmkms.toml": "address = 'tcp://127.0.0.1:26659'\nchain_id = 'testnet-croeseid-4'\n" +
			"sealed_consensus_key_path = 'secrets/secret.key'\nsealed_id_key_path = 'secrets/id.key'\n" +
			"state_file_path = 'state/priv_validator_state.json'\naws_region = 'ap-southeast-1'\n" +
			"[credentials]\naws_key_id = 'AKIDEXAMPLE'\naws_secret_key = 'not-a-real-secret'\n",
		"secrets/secret.key":              key("consensus"),
		"secrets/id.key":                  key("identity"),
		"state/priv_validator_state.json": `{"height":"5","round":"0","step":2,"signature":"","signbytes":""}`,
		"proc/31/cmdline":                 "vsock-proxy\x008000\x00kms.ap-southeast-1.amazonaws.com\x00443\x00",
		"vsock-proxy.yaml":                "allowlist:\n- {address: kms.ap-southeast-1.amazonaws.com, port: 443}\n",
		"nitro-cli":                       "#!/bin/sh\necho '[{\"EnclaveID\":\"i-1-enc2\",\"EnclaveCID\":15,\"State\":\"RUNNING\",\"Flags\":\"NONE\"}]'\n",
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "nitro-cli"), 0o700); err != nil {
		t.Fatal(err)
	}
	stdout = &bytes.Buffer{}
	vars := map[string]string{"TMKMS_NITRO_CLI": filepath.Join(dir, "nitro-cli"), "TMKMS_VSOCK_PROXY": "/nonexistent/vsock-proxy"}
	env = &Env{Stdout: stdout, Stderr: &bytes.Buffer{}, Getenv: func(k string) string { return vars[k] }}
	return dir, env, stdout
}

func checkArgs(dir string, extra ...string) []string {
	return append([]string{"-c", filepath.Join(dir, "tmkms.toml"), "--proc", filepath.Join(dir, "proc"),
		"--proxy-config", filepath.Join(dir, "vsock-proxy.yaml")}, extra...)
}

func TestCheckPasses(t *testing.T) {
	dir, env, out := checkHost(t)
	if err := runCheck(context.Background(), env, checkArgs(dir)); err != nil {
		t.Fatalf("runCheck: %v\n%s", err, out)
	}
	for _, want := range []string{"PASS  config ", "PASS  consensus-key ", "PASS  identity-key ", "PASS  state-file ",
		"PASS  nitro-cli ", "PASS  enclave ", "PASS  vsock-proxy ", "PASS  proxy-allowlist ", "PASS  credentials ",
		"PASS  region ", "PASS  kms-key ", "PASS  validator ", "WARN  anchor ", "13 checks: 12 passed, 1 warned, 0 failed, 0 skipped"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out.String(), "not-a-real-secret") {
		t.Errorf("secret in output:\n%s", out)
	}
}

func TestCheckFails(t *testing.T) {
	dir, env, out := checkHost(t)
	if err := os.Remove(filepath.Join(dir, "state/priv_validator_state.json")); err != nil {
		t.Fatal(err)
	}
	err := runCheck(context.Background(), env, checkArgs(dir, "--cid", "16"))
	if err == nil || err.Error() != "check: 2 of 13 checks failed" {
		t.Fatalf("runCheck = %v, want 2 failures\n%s", err, out)
	}
	for _, want := range []string{"FAIL  state-file ", "hint: copy the node's priv_validator_state.json",
		"FAIL  enclave          no enclave runs with CID 16 (running: CID 15)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestCheckInstanceRole runs the SDK's default chain with the metadata
// service disabled, as every test must: the check fails, fast.
func TestCheckInstanceRole(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		t.Setenv(k, "")
	}
	dir, env, out := checkHost(t)
	cfg := filepath.Join(dir, "tmkms.toml")
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	noCreds, _, _ := strings.Cut(string(data), "[credentials]")
	if err := os.WriteFile(cfg, []byte(noCreds), 0o600); err != nil {
		t.Fatal(err)
	}
	err = runCheck(context.Background(), env, checkArgs(dir, "--timeout", "2s"))
	if err == nil || !strings.Contains(out.String(), "FAIL  credentials      no AWS credentials for the instance role") {
		t.Errorf("runCheck = %v, want a credentials failure:\n%s", err, out)
	}
}

func TestCheckBadFlags(t *testing.T) {
	dir, env, _ := checkHost(t)
	if err := runCheck(context.Background(), env, checkArgs(dir, "--cid", "99999999999")); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("--cid 99999999999: %v", err)
	}
	if err := runCheck(context.Background(), env, checkArgs(dir, "extra")); err != ErrUsage {
		t.Errorf("extra argument: %v, want ErrUsage", err)
	}
}
