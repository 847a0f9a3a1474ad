package enclaveproto

import (
	"fmt"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
)

// Message is one of the message types of this package. Read returns
// pointers (*Configure, *LogRecord, …); Write takes the same.
type Message interface {
	Type() Type
	// validate checks what CBOR cannot: required fields, sizes, enums.
	validate() error
}

// normalizer is implemented by messages holding times: decoded times are
// converted to UTC so that decode(encode(m)) == m holds exactly.
type normalizer interface{ normalize() }

// Fixed sizes.
const (
	PubKeySize   = 32 // ed25519 public key (the identity key's)
	SeedSize     = signer.SeedSize
	MaxChainID   = 50 // CometBFT's MaxChainIDLen
	MaxLogAttrs  = 32
	MaxAddresses = 8  // validator nodes of one chain
	MaxChains    = 16 // chains one enclave signs for, each configured by its own Configure
	MaxInstance  = 64
	MaxChainIDs  = 16 // chains one key may be sealed for
	MaxNonce     = 64
	maxErrCode   = 64
	maxErrText   = 1024
)

// Key purposes for GenerateKey and ImportKey.
const (
	PurposeConsensus = "consensus" // the validator's signing key
	PurposeIdentity  = "identity"  // the SecretConnection key for tcp:// validators
)

// Error codes for Error.Code. Codes are stable; messages are not.
const (
	CodeBadRequest      = "bad-request"       // message not valid in this state or on this channel
	CodeBadConfig       = "bad-config"        // Configure refused (chain id, address, sizes)
	CodeKMSAccessDenied = "kms-access-denied" // KMS refused Decrypt/Encrypt (policy, PCRs, credentials)
	CodeKMS             = "kms"               // any other KMS failure
	CodeStateRegression = "state-regression"  // state record below what the enclave already signed
	CodeClusterDown     = "cluster-down"      // a decision could not be committed: etcd unreachable, without quorum, or holding no decision record
	CodeInternal        = "internal"
)

// Configure (host→enclave, config channel) starts signing for ChainID:
// the enclave unseals the keys and dials the chain's state and validator
// channels. Each chain has its own Configure (at most MaxChains), its own
// host ports and its own double-sign state; all share the log channel.
// The answer is Configured or Error.
type Configure struct {
	ChainID string `cbor:"chain_id"`
	// Addresses lists every validator node (unix:///… or
	// tcp://[node_id@]host:port); node i is reached through host port
	// ValidatorPort+i. One guard serves all.
	Addresses          []string    `cbor:"addresses"`
	ProtocolVersion    string      `cbor:"protocol_version"`
	MaxMessageSize     uint32      `cbor:"max_message_size"`
	MaxHeight          int64       `cbor:"max_height"` // 0: no limit
	Region             string      `cbor:"region"`
	KMSKeyID           string      `cbor:"kms_key_id"` // "": whichever key the sealed key names
	SealedConsensusKey []byte      `cbor:"sealed_consensus_key"`
	SealedIdentityKey  []byte      `cbor:"sealed_identity_key"` // nil for unix:// validators
	Credentials        Credentials `cbor:"credentials"`
	// Host ports the enclave dials. 0 means the default (5555, 5000, 6050).
	StatePort     uint32 `cbor:"state_port"`
	ValidatorPort uint32 `cbor:"validator_port"`
	LogPort       uint32 `cbor:"log_port"`
	// HAInstance, when set, turns on high availability: every decision is
	// committed to the cluster before it is signed, under this instance
	// name; through the host (CommitDecision) unless SealedAnchor is set.
	HAInstance string `cbor:"ha_instance,omitempty"`
	// SealedAnchor is the sealed anchor file (SealAnchor's answer): the
	// enclave then reaches etcd itself, over TLS through host ports
	// AnchorPort+i (0: 7000+i). A consensus key sealed with an anchor is
	// refused without it.
	SealedAnchor []byte `cbor:"sealed_anchor,omitempty"`
	AnchorPort   uint32 `cbor:"anchor_port,omitempty"`
}

// Configured answers Configure with the unsealed keys' public halves.
type Configured struct {
	ConsensusPubKey  []byte `cbor:"consensus_pub_key"`
	IdentityPubKey   []byte `cbor:"identity_pub_key"`             // nil when no identity key was sent
	ConsensusKeyType string `cbor:"consensus_key_type,omitempty"` // "": ed25519
}

// ConsensusKey is the consensus public key with its type.
func (c *Configured) ConsensusKey() signer.PubKey {
	return signer.PubKey{Type: keyType(c.ConsensusKeyType), Bytes: c.ConsensusPubKey}
}

// keyType is the key type a message names: ed25519 when it names none, as
// messages from before key types did.
func keyType(t string) string {
	if t == "" {
		return signer.KeyTypeEd25519
	}
	return t
}

// GenerateKey (host→enclave, config channel; for init) asks the enclave to
// create a key and seal it with KMS. The answer is GeneratedKey or Error.
type GenerateKey struct {
	Region      string      `cbor:"region"`
	KMSKeyID    string      `cbor:"kms_key_id"`
	Credentials Credentials `cbor:"credentials"`
	Purpose     string      `cbor:"purpose"`
	KeyType     string      `cbor:"key_type,omitempty"` // signer.KeyTypes; "": ed25519, the only identity type
	Binding
}

// Key is the type of the key to generate.
func (g *GenerateKey) Key() string { return keyType(g.KeyType) }

// Binding is what a new sealed key is bound to, through its KMS encryption
// context, and what its attestation document states.
type Binding struct {
	// ChainIDs are the only chains the key will sign for (none: any, as
	// keys sealed before chains were bound).
	ChainIDs []string `cbor:"chain_ids,omitempty"`
	// Anchor is the fingerprint (hex) of the anchor the key requires; ""
	// for none.
	Anchor string `cbor:"anchor,omitempty"`
	// Nonce is the operator's, echoed in the attestation document so that
	// an old document cannot be passed off as this one.
	Nonce []byte `cbor:"nonce,omitempty"`
}

// ImportKey is GenerateKey for an existing key (a migrated
// priv_validator_key.json): the enclave seals Seed instead of a new key.
// Seed prints redacted.
type ImportKey struct {
	Region      string      `cbor:"region"`
	KMSKeyID    string      `cbor:"kms_key_id"`
	Credentials Credentials `cbor:"credentials"`
	Purpose     string      `cbor:"purpose"`
	KeyType     string      `cbor:"key_type,omitempty"` // of Seed; "": ed25519
	Seed        SecretBytes `cbor:"seed"`
	Binding
}

// Key is the type of the key to import.
func (i *ImportKey) Key() string { return keyType(i.KeyType) }

// SealAnchor (host→enclave, config channel; the operator's ceremony) asks
// the enclave to seal the anchor's credentials with KMS so that only an
// attested enclave can use them. The answer is GeneratedKey, with the
// sealed anchor file, no public key, and an attestation stating the
// anchor's fingerprint.
type SealAnchor struct {
	Region      string      `cbor:"region"`
	KMSKeyID    string      `cbor:"kms_key_id"`
	Credentials Credentials `cbor:"credentials"`
	Endpoints   []string    `cbor:"endpoints"`
	CA          []byte      `cbor:"ca"`
	Cert        []byte      `cbor:"cert"`
	Key         SecretBytes `cbor:"key"`
	Username    string      `cbor:"username,omitempty"`
	Password    SecretBytes `cbor:"password,omitempty"`
	Prefix      string      `cbor:"prefix"`
	Nonce       []byte      `cbor:"nonce,omitempty"`
}

// GeneratedKey answers GenerateKey and ImportKey.
type GeneratedKey struct {
	SealedKey   []byte `cbor:"sealed_key"`
	PubKey      []byte `cbor:"pub_key"`            // empty for a sealed anchor
	Attestation []byte `cbor:"attestation"`        // NSM document binding PubKey; empty if none
	KeyType     string `cbor:"key_type,omitempty"` // PubKey's; "": ed25519
}

// Key is the sealed key's public key with its type.
func (g *GeneratedKey) Key() signer.PubKey {
	return signer.PubKey{Type: keyType(g.KeyType), Bytes: g.PubKey}
}

// Ack is the empty success answer.
type Ack struct{}

// StateSnapshot (host→enclave) is the first message on the state channel
// after the enclave dials: the persisted record, or Missing when the host
// has no state file. Record is opaque here (internal/signstate's format);
// Height/Round/Step repeat it for logging only and are not trusted.
type StateSnapshot struct {
	Record  []byte `cbor:"record"`
	Height  int64  `cbor:"height"`
	Round   int32  `cbor:"round"`
	Step    int8   `cbor:"step"`
	Missing bool   `cbor:"missing"`
}

// PersistState (enclave→host) asks the host to write Record durably before
// the enclave releases a signature. The answer, with the same request id,
// is StateAck once the record is on disk, or Error.
type PersistState struct {
	Record []byte `cbor:"record"`
	Height int64  `cbor:"height"`
	Round  int32  `cbor:"round"`
	Step   int8   `cbor:"step"`
}

// StateAck answers PersistState: the record is durable.
type StateAck struct{}

// CommitDecision (enclave→host, state channel; high availability only)
// asks the host to write Record, the enclave's authenticated decision, to
// the cluster's store if the stored record's revision is still Revision
// (0: none stored; negative: unknown, so the write cannot happen and the
// answer only reports the stored record). The answer is CommitResult, or
// Error when the store cannot be reached or has no quorum.
type CommitDecision struct {
	Record   []byte `cbor:"record"`
	Revision int64  `cbor:"revision"`
}

// CommitResult answers CommitDecision: whether Record was written (then
// Revision is its revision and Current is empty), or else the record stored
// and its revision (Current empty and Revision 0 when none is). The
// enclave authenticates Current itself.
type CommitResult struct {
	Committed bool   `cbor:"committed"`
	Current   []byte `cbor:"current"`
	Revision  int64  `cbor:"revision"`
}

// LogRecord (enclave→host, log channel, no answer) is one slog record.
type LogRecord struct {
	Time    time.Time `cbor:"time"`
	Level   int       `cbor:"level"` // slog.Level
	Message string    `cbor:"msg"`
	Attrs   []Attr    `cbor:"attrs"` // at most MaxLogAttrs
}

// Attr is one log attribute, flattened to strings by the sender.
type Attr struct {
	_     struct{} `cbor:",toarray"`
	Key   string
	Value string
}

// Error is a refusal or failure, in answer to any request. Message is for
// people and must not carry secrets; Code is for programs.
type Error struct {
	Code    string `cbor:"code"`
	Message string `cbor:"msg"`
}

// Error makes a received Error usable as a Go error.
func (e *Error) Error() string {
	return fmt.Sprintf("enclaveproto: peer error %s: %s", e.Code, e.Message)
}

func (*Configure) Type() Type      { return TypeConfigure }
func (*Configured) Type() Type     { return TypeConfigured }
func (*GenerateKey) Type() Type    { return TypeGenerateKey }
func (*ImportKey) Type() Type      { return TypeImportKey }
func (*GeneratedKey) Type() Type   { return TypeGeneratedKey }
func (*SealAnchor) Type() Type     { return TypeSealAnchor }
func (*Ack) Type() Type            { return TypeAck }
func (*StateSnapshot) Type() Type  { return TypeStateSnapshot }
func (*PersistState) Type() Type   { return TypePersistState }
func (*StateAck) Type() Type       { return TypeStateAck }
func (*CommitDecision) Type() Type { return TypeCommitDecision }
func (*CommitResult) Type() Type   { return TypeCommitResult }
func (*LogRecord) Type() Type      { return TypeLogRecord }
func (*Error) Type() Type          { return TypeError }

func (c *Configure) normalize()   { c.Credentials.normalize() }
func (g *GenerateKey) normalize() { g.Credentials.normalize() }
func (i *ImportKey) normalize()   { i.Credentials.normalize() }
func (a *SealAnchor) normalize()  { a.Credentials.normalize() }
func (l *LogRecord) normalize()   { l.Time = l.Time.UTC() }
