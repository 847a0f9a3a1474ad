package config

import (
	"flag"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/tmkms-nitro/tmkms-nitro/internal/golden"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func fullConfig() *Config {
	c := withCredentials()
	c.Addresses = []string{"tcp://0123456789abcdef0123456789abcdef01234567@10.0.0.2:26659"}
	c.ChainID = "it's-a-chain\t\"quoted\""
	c.MaxHeight = 25000000
	c.KMSKeyID = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	c.ProtocolVersion = "v0.38"
	c.MaxMessageSize = 1 << 20
	c.MetricsAddress = "127.0.0.1:9100"
	c.LogFormat = "json"
	c.AllowMissingState = true
	return c
}

// haConfig is a signer of a high-availability set: [ha] with every key.
func haConfig() *Config {
	c := Default("us-east-1")
	c.HA = &HA{
		Endpoints: []string{"https://etcd-1.internal:2379", "https://etcd-2.internal:2379", "https://[fd00::3]:2379"},
		CAFile:    "/etc/tmkms/etcd/ca.pem",
		CertFile:  "etcd/signer-a.pem",
		KeyFile:   "etcd/signer-a-key.pem",
		KeyPrefix: DefaultHAKeyPrefix,
		LeaseTTL:  DefaultHALeaseTTL,
		Instance:  "signer-a",
	}
	return c
}

func TestMarshalGolden(t *testing.T) {
	stubHostname(t, "golden-host") // [ha] instance is written unless it is the host name
	withKey := Default("ap-southeast-1")
	withKey.KMSKeyID = "alias/tmkms"
	for name, c := range map[string]*Config{
		"default": Default("ap-southeast-1"), "init": withKey, "full": fullConfig(), "ha": haConfig(),
	} {
		t.Run(name, func(t *testing.T) {
			got, err := Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", name+".toml.golden"), got, *update)
			back, err := Parse(got, "")
			if err != nil {
				t.Fatalf("Marshal output does not parse: %v", err)
			}
			if !reflect.DeepEqual(back, c) {
				t.Errorf("round trip:\n got %#v\nwant %#v", back, c)
			}
		})
	}
}

func TestMarshalRefusesInvalid(t *testing.T) {
	c := Default("")
	if _, err := Marshal(c); err == nil {
		t.Fatal("Marshal wrote a config without a region")
	}
}

func TestQuote(t *testing.T) {
	for _, s := range []string{"", "plain", "it's", "tab\there", "nl\nx", "\x00\x1f\x7f", `back\slash"`, "é✓", "'"} {
		doc := []byte("k = " + quote(s) + "\n")
		var v struct {
			K string `toml:"k"`
		}
		if err := toml.Unmarshal(doc, &v); err != nil || v.K != s {
			t.Errorf("quote(%q) = %s: decodes to %q, %v", s, doc, v.K, err)
		}
	}
}
