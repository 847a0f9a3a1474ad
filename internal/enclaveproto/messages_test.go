package enclaveproto

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/golden"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden and the FuzzRead seed corpus")

const (
	testSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
	testToken  = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN//////////"
)

func seq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func testCredentials() Credentials {
	return Credentials{
		AccessKeyID:     "ASIAEXAMPLEKEYID0001",
		SecretAccessKey: testSecret,
		SessionToken:    testToken,
		Expiration:      time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC),
	}
}

// samples are one message of every type, with fixed values so that their
// encodings can be golden files.
func samples() []struct {
	name string
	id   uint64
	msg  Message
} {
	creds := testCredentials()
	return []struct {
		name string
		id   uint64
		msg  Message
	}{
		{"configure", 1, &Configure{
			ChainID: "testnet-croeseid-4", Addresses: []string{"unix:///home/ec2-user/sockets/validator.socket"},
			ProtocolVersion: "auto", MaxMessageSize: 65536, MaxHeight: 0, Region: "ap-southeast-1",
			KMSKeyID:           "arn:aws:kms:ap-southeast-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
			SealedConsensusKey: seq(48, 0x10), Credentials: creds,
			StatePort: 5555, ValidatorPort: 5000, LogPort: 6050,
		}},
		{"configure-ha", 9, &Configure{
			ChainID: "crypto-org-chain-mainnet-1", Addresses: []string{"unix:///run/validator.socket"},
			ProtocolVersion: "auto", MaxMessageSize: 65536, Region: "ap-southeast-1",
			SealedConsensusKey: seq(48, 0x10), HAInstance: "signer-b",
		}},
		{"configure-anchor", 10, &Configure{
			ChainID: "crypto-org-chain-mainnet-1", Addresses: []string{"unix:///run/validator.socket"},
			ProtocolVersion: "auto", MaxMessageSize: 65536, Region: "ap-southeast-1",
			SealedConsensusKey: seq(48, 0x10), HAInstance: "signer-b", SealedAnchor: seq(64, 0x50), AnchorPort: 7000,
		}},
		{"configure-tcp", 2, &Configure{
			ChainID: "cosmoshub-4", Addresses: []string{"tcp://0123456789abcdef0123456789abcdef01234567@10.0.0.2:26659"},
			ProtocolVersion: "v0.38", MaxMessageSize: 1 << 20, MaxHeight: 25000000, Region: "us-east-1",
			SealedConsensusKey: seq(48, 0x10), SealedIdentityKey: seq(48, 0x40),
		}},
		{"configured", 1, &Configured{ConsensusPubKey: seq(32, 0xa0), IdentityPubKey: seq(32, 0xc0)}},
		{"generate-key", 3, &GenerateKey{Region: "ap-southeast-1", KMSKeyID: "alias/tmkms", Credentials: creds, Purpose: PurposeConsensus}},
		{"generate-key-bound", 3, &GenerateKey{Region: "ap-southeast-1", KMSKeyID: "alias/tmkms", Credentials: creds, Purpose: PurposeConsensus,
			Binding: Binding{ChainIDs: []string{"cosmoshub-4", "neutron-1"}, Anchor: strings.Repeat("ab", 32), Nonce: seq(16, 0x70)}}},
		{"seal-anchor", 11, &SealAnchor{Region: "ap-southeast-1", KMSKeyID: "alias/tmkms", Credentials: creds,
			Endpoints: []string{"https://etcd-1:2379", "https://etcd-2:2379"}, CA: seq(40, 0x01), Cert: seq(40, 0x31), Key: seq(40, 0x61),
			Username: "tmkms-signer", Password: SecretBytes("correct horse"), Prefix: "/tmkms-nitro/", Nonce: seq(16, 0x70)}},
		{"import-key", 4, &ImportKey{Region: "ap-southeast-1", KMSKeyID: "alias/tmkms", Credentials: creds, Purpose: PurposeIdentity, Seed: seq(32, 0)}},
		{"generated-key", 3, &GeneratedKey{SealedKey: seq(48, 0x10), PubKey: seq(32, 0xa0), Attestation: seq(40, 0x80)}},
		{"generate-key-secp256k1", 3, &GenerateKey{Region: "ap-southeast-1", KMSKeyID: "alias/tmkms", Credentials: creds, Purpose: PurposeConsensus,
			KeyType: signer.KeyTypeSecp256k1, Binding: Binding{ChainIDs: []string{"laozi-mainnet"}}}},
		{"import-key-secp256k1", 4, &ImportKey{Region: "ap-southeast-1", KMSKeyID: "alias/tmkms", Credentials: creds, Purpose: PurposeConsensus,
			KeyType: signer.KeyTypeSecp256k1, Seed: seq(32, 1)}},
		{"generated-key-secp256k1", 3, &GeneratedKey{SealedKey: seq(48, 0x10), PubKey: secp256k1G, Attestation: seq(40, 0x80), KeyType: signer.KeyTypeSecp256k1}},
		{"configured-secp256k1", 1, &Configured{ConsensusPubKey: secp256k1G, IdentityPubKey: seq(32, 0xc0), ConsensusKeyType: signer.KeyTypeSecp256k1}},
		{"ack", 5, &Ack{}},
		{"state-snapshot", 0, &StateSnapshot{Record: seq(64, 0x20), Height: 1234567, Round: 2, Step: 3}},
		{"state-snapshot-missing", 0, &StateSnapshot{Missing: true}},
		{"persist-state", 7, &PersistState{Record: seq(64, 0x20), Height: 1234568, Round: 0, Step: 1}},
		{"state-ack", 7, &StateAck{}},
		{"commit-decision", 8, &CommitDecision{Record: seq(96, 0x30), Revision: 41}},
		{"commit-result", 8, &CommitResult{Committed: false, Current: seq(96, 0x60), Revision: 42}},
		{"log-record", 0, &LogRecord{
			Time: time.Date(2026, 11, 25, 0, 39, 43, 123456789, time.UTC), Level: 4, Message: "signed vote",
			Attrs: []Attr{{Key: "height", Value: "1234568"}, {Key: "type", Value: "prevote"}},
		}},
		{"signed", 0, &Signed{ChainID: "cosmoshub-4", Height: 1234568, Round: 1, Step: 3, BlockHash: seq(32, 0xe0), Latency: 1843 * time.Microsecond}},
		{"refused", 0, &Refused{ChainID: "cosmoshub-4", Height: 1234568, Round: 0, Step: 2, Reason: ReasonDoubleSign,
			Message: "double sign: conflicting data at 1234568/0/prevote"}},
		{"error", 1, &Error{Code: CodeKMSAccessDenied, Message: "kms: Decrypt denied by key policy (check PCR0 and PCR4)"}},
	}
}

// secp256k1G is the compressed secp256k1 generator, a valid public key.
var secp256k1G, _ = hex.DecodeString("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")

// goldenHex formats a frame as its header on one line and the payload in
// 32-byte lines.
func goldenHex(frame []byte) string {
	var b strings.Builder
	b.WriteString(hex.EncodeToString(frame[:HeaderSize]) + "\n")
	for p := frame[HeaderSize:]; len(p) > 0; {
		n := min(32, len(p))
		b.WriteString(hex.EncodeToString(p[:n]) + "\n")
		p = p[n:]
	}
	return b.String()
}

func parseGolden(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad golden hex: %v", err)
	}
	return b
}

func TestGolden(t *testing.T) {
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			frame, err := marshal(s.msg, s.id)
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				writeCorpus(t, s.name, frame)
			}
			want := golden.Check(t, filepath.Join("testdata", s.name+".golden"), []byte(goldenHex(frame)), *update)
			// The frozen bytes must decode to the same message, so an
			// old peer's frames keep decoding.
			m, id, err := Read(bytes.NewReader(parseGolden(t, string(want))), MaxConfigPayload)
			if err != nil {
				t.Fatal(err)
			}
			if id != s.id || !reflect.DeepEqual(m, s.msg) {
				t.Errorf("golden decodes to id %d %#v, want id %d %#v", id, m, s.id, s.msg)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	for _, s := range samples() {
		var buf bytes.Buffer
		if err := Write(&buf, s.msg, s.id); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		m, id, err := Read(&buf, MaxPayload(s.msg.Type()))
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if id != s.id || !reflect.DeepEqual(m, s.msg) {
			t.Errorf("%s: got id %d %#v, want id %d %#v", s.name, id, m, s.id, s.msg)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: Read left %d bytes", s.name, buf.Len())
		}
	}
}

// TestTimeZones checks that a time in another zone, or with a monotonic
// reading, decodes as the same instant in UTC.
func TestTimeZones(t *testing.T) {
	local := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))
	var buf bytes.Buffer
	if err := Write(&buf, &LogRecord{Time: local, Message: "m"}, 1); err != nil {
		t.Fatal(err)
	}
	m, _, err := Read(&buf, MaxLogPayload)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.(*LogRecord).Time; got != local.UTC() {
		t.Errorf("time = %v, want %v", got, local.UTC())
	}
}

func TestTypeString(t *testing.T) {
	for _, s := range samples() {
		if got := s.msg.Type().String(); strings.HasPrefix(got, "type ") {
			t.Errorf("%s: no name for type %s", s.name, got)
		}
	}
	if got := Type(0xee).String(); got != "type 0xee" {
		t.Errorf("unknown type prints as %q", got)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeCorpus stores a FuzzRead seed in the go test fuzz v1 format.
func writeCorpus(t *testing.T, name string, data []byte) {
	t.Helper()
	writeFile(t, filepath.Join("testdata", "fuzz", "FuzzRead", name),
		fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data))
}
