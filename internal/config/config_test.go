package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestSeedFiles loads the two tmkms.toml files of the operator guide,
// copied byte for byte: every existing deployment must keep working.
func TestSeedFiles(t *testing.T) {
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := Load(filepath.Join("testdata", "seed-template.toml"))
	if err != nil {
		t.Fatal(err)
	}
	want := Default("<AWS region to use for KMS>")
	want.Addresses = []string{"unix:///tmp/sockets/validator.socket"}
	want.ChainID = "<chain id>"
	want.SealedConsensusKeyPath = filepath.Join(dir, "secrets/secret.key")
	want.SealedIDKeyPath = ""
	want.StateFilePath = filepath.Join(dir, "state/priv_validator_state.json")
	if !reflect.DeepEqual(tmpl, want) {
		t.Errorf("template:\n got %v\nwant %v", tmpl, want)
	}

	testnet, err := Load(filepath.Join("testdata", "seed-testnet.toml"))
	if err != nil {
		t.Fatal(err)
	}
	want = Default("ap-southeast-1")
	want.Addresses = []string{"unix:///home/ec2-user/sockets/validator.socket"}
	want.ChainID = "testnet-croeseid-4"
	want.SealedConsensusKeyPath = "/home/ec2-user/.tmkms/secrets/secret.key"
	want.SealedIDKeyPath = ""
	want.StateFilePath = "/home/ec2-user/.tmkms/state/priv_validator_state.json"
	if !reflect.DeepEqual(testnet, want) {
		t.Errorf("testnet:\n got %v\nwant %v", testnet, want)
	}
}

const minimal = `address = 'unix:///run/v.sock'
chain_id = 'c-1'
sealed_consensus_key_path = 'k'
state_file_path = 's'
aws_region = 'us-east-1'
`

func TestRelativePaths(t *testing.T) {
	c, err := Parse([]byte(minimal+"sealed_id_key_path = '../id.key'\n"), "/etc/tmkms")
	if err != nil {
		t.Fatal(err)
	}
	got := []string{c.SealedConsensusKeyPath, c.SealedIDKeyPath, c.StateFilePath}
	want := []string{"/etc/tmkms/k", "/etc/id.key", "/etc/tmkms/s"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("paths = %q, want %q", got, want)
	}
	if c, err = Parse([]byte(minimal), ""); err != nil || c.StateFilePath != "s" {
		t.Errorf("Parse without a dir = %v, %v; want paths left relative", c, err)
	}
}

func TestMaxHeight(t *testing.T) {
	for _, v := range []string{"100", "'100'", `"100"`} {
		c, err := Parse([]byte(minimal+"max_height = "+v+"\n"), "")
		if err != nil || c.MaxHeight != 100 {
			t.Errorf("max_height = %s: got %v, %v", v, c, err)
		}
	}
	for v, kind := range map[string]error{"0": ErrInvalid, "-5": ErrInvalid, "'x'": ErrInvalid, "'-1'": ErrInvalid, "1.5": ErrType, "true": ErrType} {
		_, err := Parse([]byte(minimal+"max_height = "+v+"\n"), "")
		if !errors.Is(err, kind) || !strings.Contains(err.Error(), "max_height") {
			t.Errorf("max_height = %s: err = %v, want %v naming max_height", v, err, kind)
		}
	}
}

func TestUnknownKeys(t *testing.T) {
	doc := minimal + "aws_regon = 'x'\n[credentials]\naws_key_id = 'a'\naws_secret_key = 'b'\ntoken = 'c'\n"
	_, err := Parse([]byte(doc), "")
	if !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("err = %v, want ErrUnknownKey", err)
	}
	for _, want := range []string{
		"config: line 6: aws_regon: unknown key (did you mean aws_region?)",
		"config: line 10: credentials.token: unknown key",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestLoadNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tmkms.toml")
	if err := os.WriteFile(path, []byte(minimal+"enclave_state_port = 'x'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	want := "config: " + path + ":6: enclave_state_port: want an integer from 0 to 4294967295"
	if !errors.Is(err, ErrType) || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.toml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want os.ErrNotExist", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct {
		doc, want string
		kind      error
	}{
		{"enclave_config_port = -1", "line 6: enclave_config_port: out of range", ErrType},
		{"enclave_config_port = 4294967296", "line 6: enclave_config_port: out of range", ErrType},
		{"chain_id = 5", "line 6: chain_id: set more than once", ErrSyntax},
		{"allow_missing_state = 'yes'", "line 6: allow_missing_state: want true or false", ErrType},
		{"max_message_size = 'big'", "line 6: max_message_size: want an integer", ErrType},
		{"credentials = 5", "line 6: credentials: want a table", ErrType},
		{"log_format = 'unterminated", "line 6: literal strings cannot have new lines", ErrSyntax},
	}
	for _, c := range cases {
		_, err := Parse([]byte(minimal+c.doc+"\n"), "")
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %v containing %q", c.doc, err, c.kind, c.want)
		}
	}
}

func TestValidation(t *testing.T) {
	cases := []struct {
		doc, key string
	}{
		{"chain_id = ''", "chain_id"},
		{"chain_id = '" + strings.Repeat("c", 51) + "'", "chain_id"},
		{"address = 'http://x:1'", "address"},
		{"address = '/tmp/x.sock'", "address"},
		{"address = 'unix://relative.sock'", "address"},
		{"address = 'tcp://host'", "address"},
		{"address = 'tcp://h:0'", "address"},
		{"address = 'tcp://h:65536'", "address"},
		{"address = 'tcp://:26659'", "address"},
		{"address = 'tcp://abc@h:1'\nsealed_id_key_path = 'i'", "address"},
		{"address = 'tcp://0123456789abcdef0123456789abcdef0123456g@h:1'\nsealed_id_key_path = 'i'", "address"},
		{"address = 'tcp://h:1'", "sealed_id_key_path"},
		{"sealed_consensus_key_path = ''", "sealed_consensus_key_path"},
		{"state_file_path = ''", "state_file_path"},
		{"enclave_config_cid = 3", "enclave_config_cid"},
		{"enclave_config_cid = 4294967295", "enclave_config_cid"},
		{"enclave_config_port = 0", "enclave_config_port"},
		{"enclave_state_port = 70000", "enclave_state_port"},
		{"enclave_log_port = 5555", "enclave_state_port"},
		{"enclave_config_port = 5051", "enclave_config_port"},
		{"enclave_state_port = 8000", "enclave_state_port"},
		{"aws_region = ' '", "aws_region"},
		{"[credentials]\naws_key_id = 'AKIA'", "credentials.aws_secret_key"},
		{"[credentials]\naws_secret_key = 's'", "credentials.aws_key_id"},
		{"kms_key_id = 'alias/my key'", "kms_key_id"},
		{"protocol_version = 'v0.35'", "protocol_version"},
		{"max_message_size = 100", "max_message_size"},
		{"max_message_size = 4194305", "max_message_size"},
		{"metrics_address = '9100'", "metrics_address"},
		{"log_format = 'xml'", "log_format"},
	}
	for _, c := range cases {
		doc := strings.Replace(minimal, strings.SplitN(c.doc, " =", 2)[0]+" =", "# replaced", 1) + c.doc + "\n"
		_, err := Parse([]byte(doc), "")
		var fe *FieldError
		if !errors.Is(err, ErrInvalid) || !errors.As(err, &fe) || fe.Key != c.key {
			t.Errorf("%s: err = %v, want ErrInvalid for %s", c.doc, err, c.key)
		}
	}
}

func TestValidAddresses(t *testing.T) {
	for _, a := range []string{
		"unix:///tmp/v.sock",
		"tcp://127.0.0.1:26659",
		"tcp://[::1]:26659",
		"tcp://0123456789ABCDEF0123456789abcdef01234567@node.example:26659",
	} {
		doc := strings.Replace(minimal, "address =", "# address =", 1) + "address = '" + a + "'\nsealed_id_key_path = 'i'\n"
		if _, err := Parse([]byte(doc), ""); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
}

// TestAllProblemsReported checks that one run names every problem.
func TestAllProblemsReported(t *testing.T) {
	c := Default("")
	c.ChainID = ""
	c.LogFormat = "xml"
	err := c.Validate()
	for _, key := range []string{"chain_id", "aws_region", "log_format"} {
		if !strings.Contains(err.Error(), key+":") {
			t.Errorf("error does not name %s:\n%v", key, err)
		}
	}
}

// TestManyUnknownKeys checks that a file that is not a tmkms.toml at all
// gets one short error, quickly (go-toml's per-key error is quadratic).
func TestManyUnknownKeys(t *testing.T) {
	var b strings.Builder
	for i := range 5000 {
		b.WriteString("k" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676%26)) + " = 1\n")
	}
	_, err := Parse([]byte(b.String()), "")
	if !errors.Is(err, ErrUnknownKey) || len(err.Error()) > 200 || !strings.Contains(err.Error(), "more") {
		t.Errorf("err = %.300v", err)
	}
	if _, err := Parse(make([]byte, maxFileSize+1), ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("oversized file: err = %v, want ErrInvalid", err)
	}
}

func TestAddressList(t *testing.T) {
	base := "chain_id = 'c'\nsealed_consensus_key_path = 'k'\nstate_file_path = 's'\naws_region = 'r'\n"
	c, err := Parse([]byte("address = ['unix:///a.sock', 'unix:///b.sock']\n"+base), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Addresses; len(got) != 2 || got[0] != "unix:///a.sock" {
		t.Fatalf("addresses %v", got)
	}
	out, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(out, "")
	if err != nil || len(back.Addresses) != 2 {
		t.Fatalf("round trip: %v %v\n%s", back, err, out)
	}
	for name, bad := range map[string]string{
		"empty list":  "address = []\n",
		"not strings": "address = [1, 2]\n",
		"bad entry":   "address = ['unix:///a.sock', 'http://x']\n",
	} {
		if _, err := Parse([]byte(bad+base), ""); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestPortLayout checks that every port the host listens on is distinct,
// node lists and relay ranges included, and that a collision names both
// settings.
func TestPortLayout(t *testing.T) {
	const nodes = "address = ['unix:///a.sock', 'unix:///b.sock', 'unix:///c.sock']\n"
	const anchor = "[ha]\nendpoints = ['https://e1:2379', 'https://e2:2379']\ninstance = 'a'\nsealed_anchor_path = 'a'\n"
	tests := []struct {
		name, doc string
		key       string   // the FieldError's key; "" when the layout is valid
		names     []string // what the message names
	}{
		{"defaults with nodes and an anchor", nodes + anchor, "", nil},
		{"node list reaches the log port", nodes + "enclave_tendermint_conn = 6048\n",
			"address", []string{"enclave_log_port", "enclave_tendermint_conn+2 (address 3)"}},
		{"node list reaches the state port", nodes + "enclave_tendermint_conn = 5554\n",
			"address", []string{"enclave_state_port", "enclave_tendermint_conn+1 (address 2)"}},
		{"node list reaches the config port", nodes + "enclave_tendermint_conn = 5049\n",
			"address", []string{"enclave_config_port", "enclave_tendermint_conn+1"}},
		{"node list reaches the KMS proxy", nodes + "enclave_tendermint_conn = 7999\n",
			"address", []string{"KMS proxy", "enclave_tendermint_conn+1"}},
		{"node list past 65535", nodes + "enclave_tendermint_conn = 65534\n",
			"enclave_tendermint_conn", []string{"one port per address"}},
		{"log port on the KMS proxy", "enclave_log_port = 8000\n",
			"enclave_log_port", []string{"KMS proxy", "enclave_log_port"}},
		{"anchor relays reach a node", nodes + "enclave_tendermint_conn = 7001\n" + anchor,
			"ha.anchor_port", []string{"enclave_tendermint_conn", "ha.anchor_port+1 (endpoint 2)"}},
		{"anchor relays on the KMS proxy", anchor + "anchor_port = 7999\n",
			"ha.anchor_port", []string{"KMS proxy", "ha.anchor_port+1"}},
		{"config port moved", "enclave_config_port = 5051\n",
			"enclave_config_port", []string{"must be 5050", "measured image"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := strings.Replace(minimal, "address =", "# address =", 1)
			if !strings.HasPrefix(tt.doc, "address") {
				doc = minimal
			}
			_, err := Parse([]byte(doc+tt.doc), "")
			if tt.key == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			fe := findError(err, tt.key, ErrInvalid)
			if fe == nil {
				t.Fatalf("err = %v, want ErrInvalid for %s", err, tt.key)
			}
			for _, n := range tt.names {
				if !strings.Contains(fe.Msg, n) {
					t.Errorf("%q does not name %q", fe.Msg, n)
				}
			}
		})
	}
}

// Every key of the table says what value it takes, for type errors.
func TestKeysDescribed(t *testing.T) {
	if len(keys) < 30 {
		t.Fatalf("only %d keys", len(keys))
	}
	seen := map[string]bool{}
	for _, k := range keys {
		if k.name == "" || k.want == "" || seen[k.name] {
			t.Errorf("key %q: want %q, listed before: %v", k.name, k.want, seen[k.name])
		}
		seen[k.name] = true
	}
	for _, name := range []string{"address", "ha.lease_ttl", "credentials.aws_secret_key", "credentials", "ha.anchor_port"} {
		if !seen[name] {
			t.Errorf("%s is missing", name)
		}
	}
}
