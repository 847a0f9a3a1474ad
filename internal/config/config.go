// Package config reads and writes tmkms.toml, the host helper's
// configuration. It accepts every file tmkms-light's nitro helper accepts
// (same keys, same types, max_height as a string or an integer) plus a few
// optional settings of ours, each documented on Config.
//
// Decoding is strict: an unknown key, a value of the wrong type or a value
// out of range is an error naming the key (and its line when known), and
// all problems are reported at once. The file is trusted only as far as
// the operator is: it is validated, never executed.
//
// The package must never put a secret in an error or in formatted output:
// the [credentials] secret key and session token are redacted from
// Config's and Credentials' fmt, slog and JSON output, and decoding errors
// about them never quote their value or their line.
package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/transport"
)

// Defaults, tmkms-light's where it has one.
const (
	DefaultEnclaveCID       = 15
	DefaultProtocolVersion  = "auto"
	DefaultMaxMessageSize   = 64 << 10
	MaxMaxMessageSize       = 4 << 20
	MinMaxMessageSize       = 1 << 10
	DefaultLogFormat        = "text"
	MaxChainIDLen           = 50        // CometBFT's limit
	maxFileSize             = 256 << 10 // tmkms.toml is about 2 KiB
	defaultAddress          = "unix:///tmp/validator.socket"
	defaultChainID          = "testchain-1"
	defaultConsensusKeyPath = "secrets/secret.key"
	defaultIDKeyPath        = "secrets/id.key"
	defaultStatePath        = "state/priv_validator_state.json"
)

// MaxValidators bounds the [[validator]] tables: the enclave serves at
// most this many chains.
const MaxValidators = enclaveproto.MaxChains

// The host ports of the i-th [[validator]] table (from 0) that sets none:
// each chain's channels get their own ports, tmkms-light's for the first.
// The strides leave room for MaxAddresses nodes and MaxHAEndpoints relays.
func DefaultStatePort(i int) uint32 { return enclaveproto.DefaultStatePort + uint32(i) }
func DefaultValidatorPort(i int) uint32 {
	return enclaveproto.DefaultValidatorPort + 10*uint32(i)
}
func DefaultAnchorPort(i int) uint32 { return enclaveproto.DefaultAnchorPort + 20*uint32(i) }

// [ha] defaults and bounds.
const (
	DefaultHAKeyPrefix = "/tmkms-nitro/"
	DefaultHALeaseTTL  = 10 // seconds
	MinHALeaseTTL      = 2
	MaxHALeaseTTL      = 300
	MaxHAEndpoints     = 16
	MaxHAKeyPrefixLen  = 128
	MaxHAInstanceLen   = 64
)

// Config is a parsed tmkms.toml. Field comments give the TOML key.
type Config struct {
	// address: the validator's privval listener, unix:///path or
	// tcp://[node_id@]host:port; node_id (40 hex digits) pins the node's
	// SecretConnection key. The file holds one address, or a list of them
	// (nodes of one chain: sentries, a standby), all served with one
	// double-sign state; node i is bridged on port
	// enclave_tendermint_conn+i.
	Addresses []string
	// chain_id: the only chain the enclave signs for.
	ChainID string
	// max_height: refuse to sign above this height; 0 means no limit.
	MaxHeight int64
	// sealed_consensus_key_path: the KMS-sealed consensus key.
	SealedConsensusKeyPath string
	// sealed_id_key_path: the KMS-sealed SecretConnection identity key;
	// required when an address's transport runs SecretConnection (tcp://),
	// ignored otherwise.
	SealedIDKeyPath string
	// state_file_path: the double-sign state file.
	StateFilePath string
	// enclave_config_cid: the enclave's vsock CID (the start command's
	// --cid flag overrides it).
	EnclaveConfigCID uint32
	// enclave_config_port: the enclave's vsock port for configuration. It
	// must be enclaveproto.ConfigPort: the enclave listens before it has any
	// configuration, on the port built into its measured image.
	// enclave_state_port, enclave_tendermint_conn: the host's vsock ports
	// of the state and validator channels.
	EnclaveConfigPort     uint32
	EnclaveStatePort      uint32
	EnclaveTendermintConn uint32
	// enclave_log_port (ours): the host port the enclave ships logs to,
	// default 6050 like tmkms-light's enclave.toml log_server_port.
	EnclaveLogPort uint32
	// aws_region: the KMS region.
	AWSRegion string
	// [credentials]: static AWS credentials; nil means the instance role
	// through IMDSv2, which is preferred.
	Credentials *Credentials
	// kms_key_id (ours, optional): pins the KMS key allowed to unseal.
	// Optional because the sealed key file records its key; when set, a
	// sealed key naming another key is refused.
	KMSKeyID string
	// protocol_version (ours): the CometBFT privval dialect: auto (the
	// default, detected from the node's requests), v0.34, v0.37, v0.38,
	// v0.39, v0.40 or v1.0.
	ProtocolVersion string
	// max_message_size (ours): the largest privval message accepted, in
	// bytes (MinMaxMessageSize to MaxMaxMessageSize, default 64 KiB).
	MaxMessageSize int
	// metrics_address (ours, optional): host:port for Prometheus metrics,
	// e.g. 127.0.0.1:9100; empty disables metrics.
	MetricsAddress string
	// log_format (ours): "text" or "json".
	LogFormat string
	// allow_missing_state (ours): start with an empty double-sign state
	// when the state file is missing. tmkms-light did so silently, which
	// lets anyone who can delete the file roll the guard back; we refuse
	// unless this is set (for a brand-new validator).
	AllowMissingState bool
	// [ha] (ours, optional): high availability. Several signer instances
	// (each a helper and an enclave with the same sealed key) commit every
	// signing decision to one etcd cluster before releasing a signature.
	// nil: no [ha] table, a single instance.
	HA *HA
	// [[validator]] (ours): several chains served by one helper and one
	// enclave, each table one chain's address, chain_id, max_height,
	// sealed_consensus_key_path, state_file_path, allow_missing_state,
	// enclave_state_port, enclave_tendermint_conn, protocol_version,
	// max_message_size and [validator.ha]. Each element is that chain's
	// complete configuration: the file's shared keys and its own. With
	// [[validator]] tables, the keys above that belong to a chain are not
	// set at the top level and stay empty here. nil for a single-chain
	// file (tmkms-light's), whose top level is its one validator.
	Validators []*Config
}

// Chains returns one complete single-chain configuration per chain the
// file serves: its [[validator]] tables, or the file itself.
func (c *Config) Chains() []*Config {
	if len(c.Validators) > 0 {
		return c.Validators
	}
	return []*Config{c}
}

// HA is the [ha] table.
//
// With sealed_anchor_path the enclave itself is the etcd client (the
// anchor): the helper only relays bytes to the endpoints and holds no etcd
// credential, so ca_file, cert_file and key_file must be absent.
type HA struct {
	Endpoints []string // endpoints: etcd client URLs, https://host:port; 1 to 16 of them
	CAFile    string   // ca_file: PEM CA certificates that verify the etcd servers
	CertFile  string   // cert_file: PEM TLS client certificate
	KeyFile   string   // key_file: PEM TLS client private key
	// sealed_anchor_path: the anchor's credentials sealed for the enclave
	// (local init --ha-*, or the anchor ceremony); "" for host-relayed HA.
	SealedAnchorPath string
	// anchor_port: the host relays the enclave's connection on port
	// AnchorPort+i to endpoint i; default 7000.
	AnchorPort uint32
	KeyPrefix  string // key_prefix: etcd key prefix, default "/tmkms-nitro/"
	LeaseTTL   int64  // lease_ttl: seconds an instance stays listed as alive without renewing; default 10, 2 to 300
	Instance   string // instance: this signer's name in records, logs and metrics; default the host name
}

// Credentials are static AWS credentials from the [credentials] table.
// SecretKey and SessionToken never appear in formatted output (redact.go).
type Credentials struct {
	KeyID        string // aws_key_id
	SecretKey    string // aws_secret_key
	SessionToken string // aws_session_token, optional (IAM user keys have none)
}

// Error kinds; every error from this package wraps one (via FieldError).
var (
	ErrSyntax     = errors.New("syntax error")
	ErrUnknownKey = errors.New("unknown key")
	ErrType       = errors.New("wrong type")
	ErrInvalid    = errors.New("invalid value")
)

// FieldError is one problem with the file. Several are joined with
// errors.Join when a file has several problems.
type FieldError struct {
	File string // set by Load
	Line int    // 1-based; 0 when unknown (validation happens after parsing)
	Key  string // dotted TOML key, e.g. "credentials.aws_key_id"; "" for syntax errors
	Kind error  // ErrSyntax, ErrUnknownKey, ErrType or ErrInvalid
	Msg  string // what is wrong; never a secret's value
}

func (e *FieldError) Error() string {
	s := "config: "
	switch {
	case e.File != "" && e.Line > 0:
		s += fmt.Sprintf("%s:%d: ", e.File, e.Line)
	case e.File != "":
		s += e.File + ": "
	case e.Line > 0:
		s += fmt.Sprintf("line %d: ", e.Line)
	}
	if e.Key != "" {
		s += e.Key + ": "
	}
	return s + e.Msg
}

func (e *FieldError) Unwrap() error { return e.Kind }

// Load reads, decodes and validates the file at path. Relative paths in it
// are resolved against the file's directory, not the working directory as
// tmkms-light did: tmkms-light's systemd unit sets WorkingDirectory to the
// config's directory, so both agree there, and ours does not depend on how
// the helper was started.
func Load(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config: failed to resolve %s: %w", path, err)
	}
	return parse(data, dir, path)
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: failed to read config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: failed to read %s: %w", path, err)
	}
	return data, nil
}

// Parse decodes and validates a tmkms.toml document. Relative paths are
// joined to dir unless dir is empty.
func Parse(data []byte, dir string) (*Config, error) {
	return parse(data, dir, "")
}

func parse(data []byte, dir, file string) (*Config, error) {
	if len(data) > maxFileSize {
		return nil, &FieldError{File: file, Kind: ErrInvalid,
			Msg: fmt.Sprintf("file is %d bytes, larger than the %d allowed; is it the right file?", len(data), maxFileSize)}
	}
	c, err := decode(data)
	if err == nil {
		c.resolvePaths(dir)
		err = c.Validate()
	}
	if err != nil {
		setFile(err, file)
		return nil, err
	}
	return c, nil
}

// setFile records the file name in every FieldError of err.
func setFile(err error, file string) {
	if fe, ok := err.(*FieldError); ok {
		fe.File = file
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			setFile(e, file)
		}
	}
}

func (c *Config) resolvePaths(dir string) {
	if dir == "" {
		return
	}
	for _, v := range c.Validators {
		v.resolvePaths(dir)
	}
	paths := []*string{&c.SealedConsensusKeyPath, &c.SealedIDKeyPath, &c.StateFilePath}
	if c.HA != nil {
		paths = append(paths, &c.HA.CAFile, &c.HA.CertFile, &c.HA.KeyFile, &c.HA.SealedAnchorPath)
	}
	for _, p := range paths {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}

// Anchored reports whether the enclave reaches etcd itself.
func (h *HA) Anchored() bool { return h != nil && h.SealedAnchorPath != "" }

// NeedsIdentity reports whether an address's transport runs
// SecretConnection, which takes the sealed identity key.
func (c *Config) NeedsIdentity() bool {
	for _, ch := range c.Chains() {
		for _, s := range ch.Addresses {
			if a, err := transport.ParseValidator(s); err == nil && a.Scheme.Secret() {
				return true
			}
		}
	}
	return false
}

// ConsensusKeys groups the chains by sealed consensus key: each key path
// in file order, and the chains that name it.
func (c *Config) ConsensusKeys() (paths []string, chains map[string][]string) {
	chains = map[string][]string{}
	for _, ch := range c.Chains() {
		if chains[ch.SealedConsensusKeyPath] == nil {
			paths = append(paths, ch.SealedConsensusKeyPath)
		}
		chains[ch.SealedConsensusKeyPath] = append(chains[ch.SealedConsensusKeyPath], ch.ChainID)
	}
	return paths, chains
}

// Chain is one chain of ForChains.
type Chain struct {
	ID        string
	Addresses []string // nil: the configuration's
	Key       string   // the sealed consensus key's path; "": the configuration's
}

// ForChains returns c, a single-chain configuration, as one that serves
// chains: a [[validator]] table per chain with c's chain settings, the
// default ports of its position, a state file of its own named after the
// chain next to c's, and the chain's addresses and key where it names
// them.
func ForChains(c *Config, chains []Chain) *Config {
	shared := c.shared()
	for i, ch := range chains {
		v := *c
		v.ChainID = ch.ID
		v.StateFilePath = filepath.Join(filepath.Dir(c.StateFilePath), FileName(ch.ID)+"_state.json")
		if ch.Key != "" {
			v.SealedConsensusKeyPath = ch.Key
		}
		if ch.Addresses != nil {
			v.Addresses = ch.Addresses
		}
		v.EnclaveStatePort, v.EnclaveTendermintConn = DefaultStatePort(i), DefaultValidatorPort(i)
		if v.HA.Anchored() {
			h := *v.HA
			h.AnchorPort = DefaultAnchorPort(i)
			v.HA = &h
		}
		shared.Validators = append(shared.Validators, &v)
	}
	return shared
}

// shared is c without the settings that belong to a chain: the top level
// of a file with [[validator]] tables.
func (c *Config) shared() *Config {
	s := *c
	s.Addresses, s.ChainID, s.MaxHeight = nil, "", 0
	s.SealedConsensusKeyPath, s.StateFilePath, s.AllowMissingState = "", "", false
	s.EnclaveStatePort, s.EnclaveTendermintConn, s.ProtocolVersion, s.MaxMessageSize = 0, 0, "", 0
	s.HA, s.Validators = nil, nil
	return &s
}

// FileName is chainID made safe as a file name: characters other than
// A-Z a-z 0-9 . _ - become _.
func FileName(chainID string) string {
	return strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, chainID)
}

// Default returns the configuration init writes: tmkms-light's defaults
// with region, and our settings at their defaults.
func Default(region string) *Config {
	return &Config{
		Addresses:              []string{defaultAddress},
		ChainID:                defaultChainID,
		SealedConsensusKeyPath: defaultConsensusKeyPath,
		SealedIDKeyPath:        defaultIDKeyPath,
		StateFilePath:          defaultStatePath,
		EnclaveConfigCID:       DefaultEnclaveCID,
		EnclaveConfigPort:      enclaveproto.ConfigPort,
		EnclaveStatePort:       enclaveproto.DefaultStatePort,
		EnclaveTendermintConn:  enclaveproto.DefaultValidatorPort,
		EnclaveLogPort:         enclaveproto.DefaultLogPort,
		AWSRegion:              region,
		ProtocolVersion:        DefaultProtocolVersion,
		MaxMessageSize:         DefaultMaxMessageSize,
		LogFormat:              DefaultLogFormat,
	}
}
