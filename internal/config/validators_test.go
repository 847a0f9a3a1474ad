package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tmkms-nitro/tmkms-nitro/internal/golden"
)

// shared is the top level of a file with [[validator]] tables.
const shared = `aws_region = 'us-east-1'
enclave_log_port = 6050
`

// table is a [[validator]] table for chain id with its own state file.
func table(id string, extra ...string) string {
	return fmt.Sprintf("\n[[validator]]\naddress = 'unix:///run/%s.sock'\nchain_id = '%s'\nsealed_consensus_key_path = 'k'\nstate_file_path = 'state/%s.json'\n%s",
		id, id, id, strings.Join(extra, "\n"))
}

func TestValidators(t *testing.T) {
	c, err := Parse([]byte(shared+table("a-1", "protocol_version = 'v0.38'")+table("b-1", "max_height = 900", "enclave_state_port = 6000")), "/etc/tmkms")
	if err != nil {
		t.Fatal(err)
	}
	chains := c.Chains()
	if len(chains) != 2 {
		t.Fatalf("%d chains, want 2", len(chains))
	}
	a, b := chains[0], chains[1]
	tests := []struct {
		name      string
		got, want any
	}{
		{"a chain id", a.ChainID, "a-1"},
		{"b chain id", b.ChainID, "b-1"},
		{"shared key path, resolved", b.SealedConsensusKeyPath, "/etc/tmkms/k"},
		{"own state file, resolved", b.StateFilePath, "/etc/tmkms/state/b-1.json"},
		{"a's default ports", []uint32{a.EnclaveStatePort, a.EnclaveTendermintConn}, []uint32{5555, 5000}},
		{"b's ports: set, and its position's default", []uint32{b.EnclaveStatePort, b.EnclaveTendermintConn}, []uint32{6000, 5010}},
		{"per-chain protocol", []string{a.ProtocolVersion, b.ProtocolVersion}, []string{"v0.38", "auto"}},
		{"per-chain max height", []int64{a.MaxHeight, b.MaxHeight}, []int64{0, 900}},
		{"shared settings copied", []string{a.AWSRegion, b.AWSRegion}, []string{"us-east-1", "us-east-1"}},
		{"no chain settings at the top", c.ChainID, ""},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	single, err := Parse([]byte(minimal), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := single.Chains(); len(got) != 1 || got[0] != single {
		t.Errorf("a single-chain file's Chains() = %v, want the file itself", got)
	}
}

// TestValidatorsRefused checks that each problem a file with [[validator]]
// tables can have is named with its table.
func TestValidatorsRefused(t *testing.T) {
	anchor := "[validator.ha]\nendpoints = ['https://e1:2379']\ninstance = 'a'\nsealed_anchor_path = 'anc'"
	tests := []struct {
		name, doc string
		key       string
		kind      error
		says      string
	}{
		{"chain key at the top", "chain_id = 'x'\n" + shared + table("a") + table("b"), "chain_id", ErrInvalid, "belongs in each [[validator]]"},
		{"[ha] at the top", shared + "[ha]\nendpoints = ['https://e:1']\n" + table("a"), "ha", ErrInvalid, "belongs in each"},
		{"one chain twice", shared + table("a") + "\n[[validator]]\naddress = 'unix:///x'\nchain_id = 'a'\nsealed_consensus_key_path = 'k'\nstate_file_path = 'other'\n",
			"validator[2].chain_id", ErrInvalid, "each chain is served once"},
		{"one state file for two chains", shared + table("a") + "\n[[validator]]\naddress = 'unix:///x'\nchain_id = 'b'\nsealed_consensus_key_path = 'k'\nstate_file_path = 'state/a.json'\n",
			"validator[2].state_file_path", ErrInvalid, "its own state file"},
		{"ports collide across tables", shared + table("a") + table("b", "enclave_state_port = 5555"),
			"validator[2].enclave_state_port", ErrInvalid, "validator[1].enclave_state_port"},
		{"node list reaches the next table's port", shared + strings.Replace(table("a", "enclave_tendermint_conn = 5008"), "address = 'unix:///run/a.sock'", "address = ['unix:///1', 'unix:///2', 'unix:///3']", 1) + table("b"),
			"validator[2].enclave_tendermint_conn", ErrInvalid, "validator[1].enclave_tendermint_conn+2"},
		{"anchor relays collide", shared + table("a", anchor) + table("b", anchor, "anchor_port = 7000"),
			"validator[2].ha.anchor_port", ErrInvalid, "validator[1].ha.anchor_port"},
		{"one node for two chains", shared + table("a") + strings.Replace(table("b"), "b.sock", "a.sock", 1),
			"validator[2].address", ErrInvalid, "a node serves one chain"},
		{"missing chain id", shared + "\n[[validator]]\naddress = 'unix:///x'\nsealed_consensus_key_path = 'k'\nstate_file_path = 's'\n",
			"validator[1].chain_id", ErrInvalid, "must not be empty"},
		{"bad max height", shared + table("a", "max_height = -3"), "validator[1].max_height", ErrInvalid, "positive"},
		{"bad address type", shared + "\n[[validator]]\naddress = 3\nchain_id = 'a'\nsealed_consensus_key_path = 'k'\nstate_file_path = 's'\n",
			"validator[1].address", ErrType, "string"},
		{"unknown key in a table", shared + table("a", "chain_idd = 'x'"), "validator.chain_idd", ErrUnknownKey, "did you mean validator.chain_id"},
		{"wrong type in a table", shared + table("a", "enclave_state_port = 'x'"), "validator.enclave_state_port", ErrType, "integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), "")
			fe := findError(err, tt.key, tt.kind)
			if fe == nil {
				t.Fatalf("err = %v, want %v for %s", err, tt.kind, tt.key)
			}
			if !strings.Contains(fe.Msg, tt.says) {
				t.Errorf("%s: message %q does not say %q", tt.key, fe.Msg, tt.says)
			}
		})
	}
}

func TestTooManyValidators(t *testing.T) {
	doc := shared
	for i := range MaxValidators + 1 {
		doc += table(fmt.Sprintf("c%d", i), fmt.Sprintf("enclave_state_port = %d", 20000+i), fmt.Sprintf("enclave_tendermint_conn = %d", 30000+10*i))
	}
	_, err := Parse([]byte(doc), "")
	if fe := findError(err, "validator", ErrInvalid); fe == nil || !strings.Contains(fe.Msg, "at most 16") {
		t.Fatalf("err = %v, want the limit of %d chains", err, MaxValidators)
	}
}

// TestForChains checks the file local init and init write for several
// chains: it validates, reads back equal, and gives each chain its own
// state file and ports, with a shared key or one per chain.
func TestForChains(t *testing.T) {
	stubHostname(t, "golden-host")
	base := Default("eu-west-1")
	base.HA = haConfig().HA
	tests := []struct {
		name string
		key  func(string) string
		keys []string
	}{
		{"shared key", func(string) string { return "" }, []string{"secrets/secret.key", "secrets/secret.key"}},
		{"key per chain", func(id string) string { return "secrets/" + FileName(id) + ".key" }, []string{"secrets/cosmoshub-4.key", "secrets/band_laozi.key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var chains []Chain
			for _, id := range []string{"cosmoshub-4", "band/laozi"} {
				chains = append(chains, Chain{ID: id, Key: tt.key(id), Addresses: []string{"unix:///run/" + FileName(id) + ".sock"}})
			}
			c := ForChains(base, chains)
			data, err := Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			if tt.name == "shared key" {
				golden.Check(t, filepath.Join("testdata", "validators.toml.golden"), data, *update)
			}
			back, err := Parse(data, "")
			if err != nil {
				t.Fatalf("Marshal output does not parse: %v\n%s", err, data)
			}
			if !reflect.DeepEqual(back, c) {
				t.Errorf("read back:\n%+v\nwant\n%+v", back.Validators[1], c.Validators[1])
			}
			var keys, states []string
			for _, v := range back.Chains() {
				keys, states = append(keys, v.SealedConsensusKeyPath), append(states, v.StateFilePath)
			}
			if !reflect.DeepEqual(keys, tt.keys) {
				t.Errorf("keys %q, want %q", keys, tt.keys)
			}
			if want := []string{"state/cosmoshub-4_state.json", "state/band_laozi_state.json"}; !reflect.DeepEqual(states, want) {
				t.Errorf("state files %q, want %q", states, want)
			}
		})
	}
	c := ForChains(base, []Chain{{ID: "a"}})
	c.Validators[0].ChainID = ""
	if _, err := Marshal(c); !errors.Is(err, ErrInvalid) {
		t.Errorf("Marshal of a table without chain id: %v, want ErrInvalid", err)
	}
}

func TestConsensusKeys(t *testing.T) {
	c, err := Parse([]byte(shared+table("a")+strings.Replace(table("b"), "= 'k'", "= 'k2'", 1)+table("c")), "")
	if err != nil {
		t.Fatal(err)
	}
	paths, chains := c.ConsensusKeys()
	if !reflect.DeepEqual(paths, []string{"k", "k2"}) || !reflect.DeepEqual(chains, map[string][]string{"k": {"a", "c"}, "k2": {"b"}}) {
		t.Fatalf("ConsensusKeys = %q, %q", paths, chains)
	}
}
